import { HttpException, HttpStatus } from '@nestjs/common';
import type { AcquireTimeoutError } from './acquire-timeout.error';

/**
 * What an HTTP route handler decorated with `@WithRemoteLock` answers when the lock
 * could not be acquired in time: `409 Conflict` with a body naming the lock
 * (`{ statusCode: 409, error: 'Conflict', message, lock }`). The
 * {@link AcquireTimeoutError} is kept as `cause`.
 * @publicApi
 */
export class LockConflictException extends HttpException {
  /** Name of the lock that was busy. */
  readonly lockName: string;

  constructor(timeout: AcquireTimeoutError) {
    super(
      {
        statusCode: HttpStatus.CONFLICT,
        error: 'Conflict',
        message: timeout.message,
        lock: timeout.lockName,
      },
      HttpStatus.CONFLICT,
      { cause: timeout },
    );
    this.lockName = timeout.lockName;
  }
}
