import { MESSAGES } from '../rlock.messages';
import { RemoteLockError } from './remote-lock.error';

/**
 * What the next holder finds in `lastError` after an operator called
 * `RLockService.forceRelease()`; `message` carries the reason given.
 * @publicApi
 */
export class ForceReleasedError extends RemoteLockError {
  override readonly code: string = 'RLOCK_FORCE_RELEASED';

  constructor(reason: string = MESSAGES.forceReleased) {
    super(reason);
  }
}
