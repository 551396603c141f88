import { RemoteLockError } from './remote-lock.error';

/**
 * An argument or option was rejected before any database call was made.
 * @publicApi
 */
export class InvalidArgumentError extends RemoteLockError {
  override readonly code: string = 'RLOCK_INVALID_ARGUMENT';

  constructor(
    /** The argument or option that was rejected. */
    readonly argument: string,
    message: string,
  ) {
    super(message);
  }
}
