/**
 * Options of `@WithRemoteLock`.
 * @publicApi
 */
export interface WithRemoteLockOptions {
  /**
   * How long to wait for the lock, in ms; `0` makes exactly one attempt. Default: the
   * module's `acquireTimeoutMs`, or one attempt when `onLocked` is `'skip'`.
   */
  acquireTimeoutMs?: number;
  /** Lease (ttl) of the lock, in ms. Default: the module's `ttlMs`. */
  ttlMs?: number;
  /**
   * What to do when the lock stays busy: `'throw'` an `AcquireTimeoutError` (a 409
   * `LockConflictException` in an HTTP route handler), or `'skip'`: return `undefined`
   * without running the method (cluster-wide singleton cron jobs). Default: `'throw'`.
   */
  onLocked?: 'throw' | 'skip';
  /** Inside a locked section that already holds this lock, reuse it instead of failing with `LockReentryError`. */
  reentrant?: boolean;
}

/** Keys accepted in {@link WithRemoteLockOptions}. */
export const WITH_REMOTE_LOCK_OPTION_KEYS = [
  'acquireTimeoutMs',
  'ttlMs',
  'onLocked',
  'reentrant',
] as const;
