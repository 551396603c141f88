import { MESSAGES } from '../rlock.messages';
import { RemoteLockError } from './remote-lock.error';

/**
 * A locked section asked again for a lock it already holds (it would otherwise wait
 * for itself until its acquire timeout).
 * @publicApi
 */
export class LockReentryError extends RemoteLockError {
  override readonly code: string = 'RLOCK_REENTRY';

  constructor(
    /** Name of the lock asked for twice. */
    readonly lockName: string,
  ) {
    super(MESSAGES.reentry(lockName));
  }
}
