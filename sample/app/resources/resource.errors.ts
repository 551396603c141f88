/**
 * The resource could not be created this time, but trying again may work (a timeout of
 * an upstream service, say). The next holder of the lock retries.
 */
export class RecoverableError extends Error {
  override readonly name = 'RecoverableError';

  constructor(
    message: string,
    /** The instance that failed. */
    readonly instance: string = '',
  ) {
    super(message);
  }
}

/**
 * The resource cannot be created (the request is invalid for good, say). The next
 * holders refuse instead of trying again, and pass the error on.
 */
export class FatalError extends Error {
  override readonly name = 'FatalError';

  constructor(
    message: string,
    /** The instance that failed first. */
    readonly instance: string = '',
    /** True when this instance did not try, because a previous holder had failed fatally. */
    readonly refused: boolean = false,
  ) {
    super(message);
  }
}
