import { RemoteLockError } from './remote-lock.error';

/**
 * The lock database failed (connection lost, statement rejected, …). The driver's
 * error is the `cause`. Never disguised as a timeout or as "not acquired".
 * @publicApi
 */
export class LockDatabaseError extends RemoteLockError {
  override readonly code: string = 'RLOCK_DATABASE';

  constructor(message: string, cause: unknown) {
    super(message, { cause });
  }
}
