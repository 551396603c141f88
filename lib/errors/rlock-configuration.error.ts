import { RemoteLockError } from './remote-lock.error';

/**
 * The module cannot run as configured (unsupported database, missing lock table, bad
 * module options). Raised at application startup.
 * @publicApi
 */
export class RLockConfigurationError extends RemoteLockError {
  override readonly code: string = 'RLOCK_CONFIGURATION';
}
