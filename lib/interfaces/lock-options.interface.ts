/**
 * Options of `RLockService.lock()` and `tryLock()`.
 * @publicApi
 */
export interface LockOptions {
  /** Lease (ttl) of this acquisition, in ms. Default: the module's `ttlMs`. */
  ttlMs?: number;
  /** Inside a locked section, reuse the lock it already holds instead of failing with `LockReentryError`. */
  reentrant?: boolean;
  /** Aborts the wait (the call rejects with the signal's reason). */
  signal?: AbortSignal;
}

/**
 * Options of `RLockService.withLock()`.
 * @publicApi
 */
export interface WithLockOptions extends LockOptions {
  /** How long to wait for the lock, in ms; `0` makes exactly one attempt. Default: the module's `acquireTimeoutMs`. */
  acquireTimeoutMs?: number;
}

/** Keys accepted in {@link LockOptions}. */
export const LOCK_OPTION_KEYS = ['ttlMs', 'reentrant', 'signal'] as const;
/** Keys accepted in {@link WithLockOptions}. */
export const WITH_LOCK_OPTION_KEYS = [...LOCK_OPTION_KEYS, 'acquireTimeoutMs'] as const;
