import type { IsolationLevel } from 'typeorm/driver/types/IsolationLevel';

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
  /**
   * ShedLock's `lockAtLeastFor`: the lock stays taken until this long after the grant
   * (database clock), even when released sooner: the release records its outcome at once;
   * no timer or process needs to stay alive. A crashed holder still frees it at its lease.
   */
  minHoldMs?: number;
  /**
   * ShedLock's `lockAtMostFor`: the holding ends this long after the grant, renewed or
   * not: the holder's `signal` aborts with {@link HoldLimitExceededError}, renewals stop,
   * the lock is free at the limit even if the holder is stuck, and the next holder finds a
   * `HoldLimitExceededError` in `lastError`.
   */
  maxHoldMs?: number;
  /**
   * Run once per period across the cluster (`'1m'`, `'30s'`, `'1h'`, or ms): the grant
   * records the period (tick) it belongs to, decided by the database clock, and a grant
   * for a tick that already ran is refused even when the lock is free. A call with
   * `oncePer` makes exactly one attempt (no waiting). A tick nobody ran is skipped.
   */
  oncePer?: number | string;
}

/**
 * Options of `RLockService.withLock()`.
 * @publicApi
 */
export interface WithLockOptions extends LockOptions {
  /** How long to wait for the lock, in ms; `0` makes exactly one attempt. Default: the module's `acquireTimeoutMs`. */
  acquireTimeoutMs?: number;
  /**
   * A transactional section: `fn` runs inside a transaction on the lock store's data source
   * and gets its `EntityManager`; on success the release (with the hand-off to the next
   * waiter) runs inside that transaction just before it commits, so the work and the
   * release commit together, and a holder that lost the lock cannot commit (the release
   * matches nothing: rolled back, {@link LockLostError}). A throw rolls the work back and
   * the error is stored by a release outside it. The grant and renewals stay outside.
   */
  transactional?: boolean;
  /** The transaction's isolation level (with `transactional`). Default: the database's. */
  isolationLevel?: IsolationLevel;
}

/** Keys accepted in {@link LockOptions}. */
export const LOCK_OPTION_KEYS = [
  'ttlMs',
  'reentrant',
  'signal',
  'minHoldMs',
  'maxHoldMs',
  'oncePer',
] as const;
/** Keys accepted in {@link WithLockOptions}. */
export const WITH_LOCK_OPTION_KEYS = [
  ...LOCK_OPTION_KEYS,
  'acquireTimeoutMs',
  'transactional',
  'isolationLevel',
] as const;
