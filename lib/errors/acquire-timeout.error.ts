import { MESSAGES } from '../rlock.messages';
import { RemoteLockError } from './remote-lock.error';

/**
 * The lock could not be acquired within the acquire timeout.
 * @publicApi
 */
export class AcquireTimeoutError extends RemoteLockError {
  override readonly code: string = 'RLOCK_ACQUIRE_TIMEOUT';

  constructor(
    /** Name of the lock that was asked for. */
    readonly lockName: string,
    /** The acquire timeout that ran out, in milliseconds. */
    readonly timeoutMs: number,
  ) {
    super(MESSAGES.acquireTimeout(lockName, timeoutMs));
  }
}
