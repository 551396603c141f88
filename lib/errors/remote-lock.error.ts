/**
 * Base class of every error nestjs-rlock raises, and of errors rebuilt from a stored
 * outcome whose class is not registered.
 * @publicApi
 */
export class RemoteLockError extends Error {
  /** A stable, machine-readable code (`RLOCK_*`). */
  readonly code: string = 'RLOCK_ERROR';

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    Object.defineProperty(this, 'name', {
      value: new.target.name,
      enumerable: false,
      writable: true,
      configurable: true,
    });
  }
}
