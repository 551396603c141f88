import { performance } from 'node:perf_hooks';
import { LockDatabaseError } from './errors/lock-database.error';
import { LockLostError } from './errors/lock-lost.error';
import type { LockEventEmitter } from './events/lock-event-emitter';
import { assertDuration } from './internal/validate';
import { RLOCK_LIMITS } from './rlock.constants';
import { MESSAGES } from './rlock.messages';

/** What a held lock needs from the service that granted it. Internal. */
export interface LockLease {
  readonly key: string;
  readonly token: string;
  ttlMs: number;
  /** Renews the lease; the new end (µs, database clock), or null when it is no longer ours. Throws LockDatabaseError. */
  renew(ttlMs: number): Promise<number | null>;
  /**
   * Releases with an outcome; false when it is no longer ours. Throws the driver's error
   * as is: the lock wraps it in a LockDatabaseError (one promise less on every release).
   */
  release(outcome: ReleaseOutcome, error: unknown): Promise<boolean>;
  /** Called once when this process stops holding the lock (released, lost or given up). */
  settled(lock: RemoteLock): void;
  /** Where renewals, releases and losses are reported. */
  readonly events: LockEventEmitter;
  /** performance.now() at the grant. */
  readonly grantedAt: number;
}

type State = 'held' | 'releasing' | 'released' | 'lost';

/** How a release ends the holding: `pass` keeps the stored outcome (a lock nobody used). Internal. */
export type ReleaseOutcome = 'released' | 'error' | 'pass';

let releaseWithOutcome: (
  lock: RemoteLock,
  outcome: ReleaseOutcome,
  error: unknown,
) => Promise<void>;
let stopRenewing: (lock: RemoteLock) => void;

/**
 * A held lock, returned by `RLockService.lock()`, `tryLock()` and given to `withLock()`
 * callbacks. Its lease is renewed in the background until `unlock()`; if the lease is
 * lost, `signal` aborts with a {@link LockLostError}.
 * @publicApi
 */
export class RemoteLock {
  /** The lock's name. */
  readonly name: string;
  /** Fencing token of this acquisition: larger than every fence handed out before for this name. */
  readonly fence: number;
  /**
   * The outcome the previous holder left: `null` after a clean release or on first use,
   * the error it passed to `unlock(error)` (rebuilt as a registered class when possible),
   * a `LeaseExpiredError` if it vanished without releasing, a `ForceReleasedError` after
   * an operator freed the lock.
   */
  readonly lastError: Error | null;

  #lease: LockLease | null;
  #parent: RemoteLock | null;
  #state: State = 'held';
  /** When the lease ends (µs, database clock); its Date is built on first read. */
  #expiresAtUs: number;
  #expiresAt: Date | undefined;
  #localDeadline: number;
  #lostError: LockLostError | undefined;
  #settled = false;
  #releasing: Promise<void> | undefined;
  /** Armed while held: the next renewal. */
  #renewTimer: NodeJS.Timeout | undefined;
  /** Armed only while a renewal is due or on its way: the loss at the local deadline. */
  #deadlineTimer: NodeJS.Timeout | undefined;
  /** Created on the first read of `signal` (most callers never read it). */
  #controller: AbortController | undefined;

  /** @internal Created by RLockService only. */
  constructor(
    init:
      | {
          name: string;
          fence: number;
          lastError: Error | null;
          expiresAtUs: number;
          /** performance.now() when the granting statement was sent. */
          sentAt: number;
          /** The lease granted, when shorter than the ttl (a hand-off): renewed sooner. */
          grantedMs?: number;
          lease: LockLease;
        }
      | { parent: RemoteLock },
  ) {
    if ('parent' in init) {
      const parent = init.parent;
      this.name = parent.name;
      this.fence = parent.fence;
      this.lastError = parent.lastError;
      this.#lease = null;
      this.#parent = parent;
      this.#expiresAtUs = 0;
      this.#localDeadline = 0;
      return;
    }
    this.name = init.name;
    this.fence = init.fence;
    this.lastError = init.lastError;
    this.#lease = init.lease;
    this.#parent = null;
    this.#expiresAtUs = init.expiresAtUs;
    this.#localDeadline = init.sentAt + Math.min(init.lease.ttlMs, init.grantedMs ?? Infinity);
    this.#schedule(init.lease.grantedAt);
  }

  /** When the lease ends unless renewed (database clock). */
  get expiresAt(): Date {
    if (this.#parent) return this.#parent.expiresAt;
    return (this.#expiresAt ??= new Date(this.#expiresAtUs / 1000));
  }

  /** Aborts with a {@link LockLostError} when the lease is lost. Pass it to the work the lock guards. */
  get signal(): AbortSignal {
    if (this.#parent) return this.#parent.signal;
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      // Lost before anyone asked: the signal is born aborted, with the same reason.
      if (this.#state === 'lost') this.#controller.abort(this.#lostError);
    }
    return this.#controller.signal;
  }

  /** Whether this handle still holds the lock, as far as this process knows. */
  get isHeld(): boolean {
    return this.#parent ? this.#parent.isHeld && this.#state === 'held' : this.#state === 'held';
  }

  /**
   * Extends the lease to `ttlMs` from now (database clock) and uses that lease for the
   * background renewals from then on. Rejects with {@link LockLostError} if the lock is
   * no longer held.
   */
  async extend(ttlMs?: number): Promise<void> {
    if (ttlMs !== undefined) assertDuration(ttlMs, 'ttlMs', RLOCK_LIMITS.minTtlMs);
    if (this.#parent) {
      if (this.#state !== 'held') throw this.#notHeld();
      return this.#parent.extend(ttlMs);
    }
    if (this.#state !== 'held') throw this.#notHeld();
    const lease = this.#lease!;
    if (ttlMs !== undefined) lease.ttlMs = ttlMs;
    await this.#renew();
    if (this.#state !== 'held') throw this.#notHeld();
  }

  /**
   * Releases the lock, recording the outcome for the next holder: `unlock()` or
   * `unlock(null)` for success, `unlock(error)` to hand the error over. A second call is
   * a no-op; rejects with {@link LockLostError} if the lock was lost before.
   */
  unlock(error?: unknown): Promise<void> {
    return this.#release(error !== undefined && error !== null ? 'error' : 'released', error);
  }

  #release(outcome: ReleaseOutcome, error: unknown): Promise<void> {
    if (this.#parent) {
      // A re-entered lock belongs to the enclosing section, which releases it.
      if (this.#state === 'held') this.#state = 'released';
      return Promise.resolve();
    }
    if (this.#state === 'released') return Promise.resolve();
    if (this.#state === 'lost') return Promise.reject(this.#lostError!);
    if (this.#releasing) return this.#releasing;
    this.#state = 'releasing';
    this.#stopTimers();
    const releasing = this.#releaseNow(outcome, error);
    // A release that failed at once is over already (held again): keep no failed promise.
    if (this.#state === 'releasing') this.#releasing = releasing;
    return releasing;
  }

  async #releaseNow(outcome: ReleaseOutcome, error: unknown): Promise<void> {
    const lease = this.#lease!;
    let released: boolean;
    try {
      released = await lease.release(outcome, error);
    } catch (cause) {
      const databaseError = new LockDatabaseError(
        MESSAGES.databaseError('release', this.name),
        cause,
      );
      // Still ours until the lease ends: a later unlock() may try again. Renewals
      // stay stopped so that the lease runs out if nobody does.
      this.#state = 'held';
      this.#releasing = undefined;
      this.#settle();
      lease.events.releaseFailed(this, databaseError);
      throw databaseError;
    }
    if (!released) {
      this.#lose(MESSAGES.lostTakenOver);
      throw this.#lostError!;
    }
    this.#state = 'released';
    this.#settle();
    lease.events.released(this, outcome === 'error', lease.grantedAt);
  }

  #notHeld(): LockLostError {
    const parentLost = this.#parent === null ? undefined : this.#parent.#lostError;
    return this.#lostError ?? parentLost ?? new LockLostError(this.name, MESSAGES.lostReleased);
  }

  /**
   * Arms one timer: the next renewal (a third of the lease on), or the loss at the local
   * deadline when that comes first. The deadline is armed when a renewal falls due (see
   * `#renewDue`), so a lock released before then never had a second timer.
   */
  #schedule(now: number): void {
    this.#stopTimers();
    const wait = Math.max(0, this.#localDeadline - now);
    // A third of the lease on (of what is left of a short hand-off lease, at once).
    const renewIn = Math.min(this.#lease!.ttlMs / 3, wait / 3);
    if (renewIn < wait) {
      this.#renewTimer = setTimeout(() => this.#renewDue(), renewIn);
      this.#renewTimer.unref();
    } else {
      this.#armDeadline(wait);
    }
  }

  #renewDue(): void {
    this.#renewTimer = undefined;
    this.#armDeadline(Math.max(0, this.#localDeadline - performance.now()));
    void this.#renew().catch(() => undefined);
  }

  /** Loses the lock `wait` ms from now unless a renewal succeeds before (once armed, kept). */
  #armDeadline(wait: number): void {
    if (this.#deadlineTimer !== undefined) return;
    this.#deadlineTimer = setTimeout(() => this.#lose(MESSAGES.lostExpired), wait);
    this.#deadlineTimer.unref();
  }

  async #renew(): Promise<void> {
    if (this.#state !== 'held') return;
    const lease = this.#lease!;
    const ttlMs = lease.ttlMs;
    const sentAt = performance.now();
    let end: number | null;
    try {
      end = await lease.renew(ttlMs);
    } catch (error) {
      if (this.#state !== 'held') return;
      lease.events.renewalFailed(this, error);
      const left = this.#localDeadline - performance.now();
      if (left <= 0) {
        this.#lose(MESSAGES.lostExpired, error);
        return;
      }
      // Try again soon, before the lease runs out; the deadline timer stays armed.
      this.#armDeadline(left);
      clearTimeout(this.#renewTimer);
      this.#renewTimer = setTimeout(
        () => void this.#renew().catch(() => undefined),
        Math.min(ttlMs / 6, left / 2),
      );
      this.#renewTimer.unref();
      throw error;
    }
    if (this.#state !== 'held') return;
    if (end === null) {
      this.#lose(MESSAGES.lostTakenOver);
      return;
    }
    this.#expiresAtUs = end;
    this.#expiresAt = new Date(end / 1000);
    lease.events.renewed(this, this.#expiresAt);
    this.#localDeadline = sentAt + ttlMs;
    this.#schedule(performance.now());
  }

  #lose(why: string, cause?: unknown): void {
    if (this.#state === 'lost' || this.#state === 'released') return;
    this.#state = 'lost';
    this.#stopTimers();
    this.#lostError = new LockLostError(
      this.name,
      why,
      cause === undefined ? undefined : { cause },
    );
    this.#settle();
    this.#lease!.events.lost(this, this.#lostError, this.#lease!.grantedAt);
    this.#controller?.abort(this.#lostError);
  }

  #stopTimers(): void {
    clearTimeout(this.#renewTimer);
    clearTimeout(this.#deadlineTimer);
    this.#renewTimer = undefined;
    this.#deadlineTimer = undefined;
  }

  #settle(): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#lease!.settled(this);
  }

  static {
    releaseWithOutcome = (lock, outcome, error) => lock.#release(outcome, error);
    stopRenewing = (lock) => {
      if (lock.#state === 'held') lock.#stopTimers();
    };
  }
}

/** Creates the handle of a lock re-entered by its own locked section. Internal. */
export function reenteredLock(parent: RemoteLock): RemoteLock {
  return new RemoteLock({ parent });
}

/** Releases recording a failure, even when the thrown value is `undefined`. Internal. */
export function unlockWithError(lock: RemoteLock, error: unknown): Promise<void> {
  return releaseWithOutcome(lock, 'error', error);
}

/** Releases a lock nobody used, keeping the outcome its previous holder stored. Internal. */
export function passOnLock(lock: RemoteLock): Promise<void> {
  return releaseWithOutcome(lock, 'pass', undefined);
}

/** Stops the background renewal of a held lock (shutdown). Internal. */
export function stopRenewal(lock: RemoteLock): void {
  stopRenewing(lock);
}
