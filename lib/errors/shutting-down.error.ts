import { MESSAGES } from '../rlock.messages';
import { RemoteLockError } from './remote-lock.error';

/**
 * A lock was asked for while the application shuts down, or a wait was cut short by
 * the shutdown.
 * @publicApi
 */
export class ShuttingDownError extends RemoteLockError {
  override readonly code: string = 'RLOCK_SHUTTING_DOWN';

  constructor() {
    super(MESSAGES.shuttingDown);
  }
}
