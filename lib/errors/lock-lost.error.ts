import { MESSAGES } from '../rlock.messages';
import { RemoteLockError } from './remote-lock.error';

/**
 * The lock is no longer held by this handle: its lease ran out, someone else took it,
 * it was force-released, or it was already released. Raised by `unlock()` and
 * `extend()`, and the reason of `lock.signal` when the lease is lost.
 * @publicApi
 */
export class LockLostError extends RemoteLockError {
  override readonly code: string = 'RLOCK_LOCK_LOST';

  constructor(
    /** Name of the lost lock. */
    readonly lockName: string,
    why: string,
    options?: { cause?: unknown },
  ) {
    super(MESSAGES.lockLost(lockName, why), options);
  }
}
