import type { LeaseExpiredError } from '../errors/lease-expired.error';
import type { LockLostError } from '../errors/lock-lost.error';
import type { LockOutcome } from '../interfaces/lock-state.interface';

/**
 * What every lock event carries.
 * @publicApi
 */
export interface RLockEventBase {
  /** The lock's name. */
  name: string;
  /** When the event happened (this process's clock). */
  at: Date;
}

/**
 * One acquisition attempt is about to be sent to the database.
 * @publicApi
 */
export interface LockAttemptEvent extends RLockEventBase {
  type: 'attempt';
}

/**
 * The lock was granted to this process.
 * @publicApi
 */
export interface LockAcquiredEvent extends RLockEventBase {
  type: 'acquired';
  /** Fence of this acquisition. */
  fence: number;
  /** How long the caller waited, from the call to the grant, in ms. */
  waitMs: number;
  /** How the previous holding ended (`null` on first use). */
  lastOutcome: LockOutcome | null;
  /** The previous holder's error, as the new holder sees it in `lock.lastError`. */
  lastError: Error | null;
  /**
   * With `maxHoldMs`: when this holding ends, renewed or not (database clock); the
   * holder's `signal` aborts with `HoldLimitExceededError` then. Null without a limit.
   */
  holdLimit: Date | null;
}

/**
 * A waiting caller gave up: `lock()` or `withLock()` rejects with `AcquireTimeoutError`.
 * @publicApi
 */
export interface LockTimedOutEvent extends RLockEventBase {
  type: 'timed-out';
  /** The acquire timeout of the call, in ms. */
  timeoutMs: number;
  /** How long the caller actually waited, in ms. */
  waitMs: number;
}

/**
 * A grant took over a lease that ran out: the previous holder vanished without releasing.
 * Follows the `acquired` event of the same grant.
 * @publicApi
 */
export interface LockExpiredTakeoverEvent extends RLockEventBase {
  type: 'expired-takeover';
  /** Fence of the new acquisition. */
  fence: number;
  /** What the new holder finds in `lock.lastError`. */
  lastError: LeaseExpiredError;
}

/**
 * The lease was renewed (in the background or by `extend()`).
 * @publicApi
 */
export interface LockRenewedEvent extends RLockEventBase {
  type: 'renewed';
  fence: number;
  /** The new end of the lease (database clock). */
  expiresAt: Date;
}

/**
 * A renewal failed on a database error; it is tried again while the lease lasts.
 * @publicApi
 */
export interface LockRenewalFailedEvent extends RLockEventBase {
  type: 'renewal-failed';
  fence: number;
  /** The `LockDatabaseError` (the driver's error is its `cause`). */
  error: unknown;
}

/**
 * The lock was released by this process.
 * @publicApi
 */
export interface LockReleasedEvent extends RLockEventBase {
  type: 'released';
  fence: number;
  /** How long it was held, in ms. */
  holdMs: number;
  /** `error` when it was released with an error for the next holder. */
  outcome: 'released' | 'error';
  /**
   * With `minHoldMs`, released before it ran out: the lock stays taken until then
   * (database clock), though the outcome is already recorded. Null otherwise.
   */
  holdUntil: Date | null;
}

/**
 * `unlock()` failed on a database error: the lock stays held until its lease ends.
 * @publicApi
 */
export interface LockReleaseFailedEvent extends RLockEventBase {
  type: 'release-failed';
  fence: number;
  /** The `LockDatabaseError` (the driver's error is its `cause`). */
  error: unknown;
}

/**
 * The lease was lost while held: `lock.signal` aborts with `error`.
 * @publicApi
 */
export interface LockLostEvent extends RLockEventBase {
  type: 'lost';
  fence: number;
  /** How long it was held before it was lost, in ms. */
  holdMs: number;
  error: LockLostError;
}

/**
 * This process called `forceRelease()`.
 * @publicApi
 */
export interface LockForceReleasedEvent extends RLockEventBase {
  type: 'force-released';
  /** The reason given, if any. */
  reason: string | undefined;
  /** False when the lock was not held (nothing was changed). */
  released: boolean;
}

/**
 * Everything `RLockService.events$` emits, told apart by `type`.
 * @publicApi
 */
export type RLockEvent =
  | LockAttemptEvent
  | LockAcquiredEvent
  | LockTimedOutEvent
  | LockExpiredTakeoverEvent
  | LockRenewedEvent
  | LockRenewalFailedEvent
  | LockReleasedEvent
  | LockReleaseFailedEvent
  | LockLostEvent
  | LockForceReleasedEvent;

/**
 * The `type` of every lock event.
 * @publicApi
 */
export type RLockEventType = RLockEvent['type'];
