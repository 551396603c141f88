import type { IsolationLevel } from 'typeorm/driver/types/IsolationLevel';

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
  /**
   * The lock stays taken until this long after the grant (database clock), even when the
   * method returns sooner (ShedLock's `lockAtLeastFor`). See `LockOptions.minHoldMs`.
   */
  minHoldMs?: number;
  /**
   * The holding ends this long after the grant even if the method is still running
   * (ShedLock's `lockAtMostFor`): its `signal` aborts with `HoldLimitExceededError` and the
   * next holder is told. See `LockOptions.maxHoldMs`.
   */
  maxHoldMs?: number;
  /**
   * Run once per period across the cluster (`'1m'`, `'30s'`, or ms), whatever the replicas'
   * timers and clocks: the period is decided by the database clock and recorded with the
   * lock. Makes exactly one attempt. Typically with `onLocked: 'skip'` under `@Cron`.
   */
  oncePer?: number | string;
  /**
   * A transactional section (see `WithLockOptions.transactional`): the method runs inside a
   * transaction on the lock store's data source, whose `EntityManager` reaches the parameter
   * marked `@LockManager()`; the release commits with its work, and a lost lock cannot commit.
   */
  transactional?: boolean;
  /** The transaction's isolation level (with `transactional`). Default: the database's. */
  isolationLevel?: IsolationLevel;
}

/** Keys accepted in {@link WithRemoteLockOptions}. */
export const WITH_REMOTE_LOCK_OPTION_KEYS = [
  'acquireTimeoutMs',
  'ttlMs',
  'onLocked',
  'reentrant',
  'minHoldMs',
  'maxHoldMs',
  'oncePer',
  'transactional',
  'isolationLevel',
] as const;
