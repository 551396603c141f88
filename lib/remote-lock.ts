import { performance } from 'node:perf_hooks';
import { LockDatabaseError } from './errors/lock-database.error';
import { HoldLimitExceededError } from './errors/hold-limit-exceeded.error';
import { LockLostError } from './errors/lock-lost.error';
import type { LockEventEmitter } from './events/lock-event-emitter';
import { assertDuration } from './internal/validate';
import { RELEASE_RETRY, RLOCK_LIMITS } from './rlock.constants';
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

/**
 * `held`: renewed in the background. `releasing`: the release is on its way. `unreleased`:
 * the release failed; it is tried again (never renewed) until the lease's local deadline.
 */
type State = 'held' | 'releasing' | 'unreleased' | 'released' | 'lost';

/** How a release ends the holding: `pass` keeps the stored outcome (a lock nobody used). Internal. */
export type ReleaseOutcome = 'released' | 'error' | 'pass';

/** A release run by the caller instead of the lease's (a transactional section's, in its transaction). */
type ReleaseVia = (outcome: ReleaseOutcome, error: unknown) => Promise<boolean>;

let releaseWithOutcome: (
  lock: RemoteLock,
  outcome: ReleaseOutcome,
  error: unknown,
  via?: ReleaseVia,
) => Promise<void>;
let abandonLock: (lock: RemoteLock) => boolean;

/** A release that failed, tried again with a backoff while the lease lasts. */
interface ReleaseRetry {
  readonly outcome: ReleaseOutcome;
  readonly error: unknown;
  attempts: number;
  timer: NodeJS.Timeout | undefined;
  running: Promise<void> | undefined;
}

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
  /** performance.now() by which the lease surely still runs: never later than the database's expiry. */
  #localDeadline: number;
  /** With `maxHoldMs`: when the holding ends, renewed or not (performance.now() time). */
  #holdDeadline = Infinity;
  #lostError: LockLostError | undefined;
  #lostWhy = '';
  /** A release found the row no longer ours: nothing is left to release. */
  #gone = false;
  #settled = false;
  #releasing: Promise<void> | undefined;
  #retry: ReleaseRetry | undefined;
  /** The one release tried after a local loss. */
  #releasedAfterLoss: Promise<void> | undefined;
  /**
   * Renewals on their way. Whichever of several runs last in the database sets the
   * expiry, so while they overlap (a burst) only the earliest end they may set counts.
   */
  #inFlight = 0;
  /** The burst's earliest possible end: min(sent + ttl) of its statements (performance.now()). */
  #burstDeadline = Infinity;
  /** The earliest end the burst's successful statements reported (µs, database clock). */
  #burstEndUs = Infinity;
  #burstRenewed = false;
  /** `extend()` calls waiting for the burst to be answered. */
  #burstWaiters: (() => void)[] | undefined;
  /** Armed while held: the next renewal. */
  #renewTimer: NodeJS.Timeout | undefined;
  /** Armed only while a renewal is due or on its way, or a release is retried: the loss at the local deadline. */
  #deadlineTimer: NodeJS.Timeout | undefined;
  #deadlineArmedAt = Infinity;
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
          /** With `maxHoldMs`: how long after the grant the holding ends, renewed or not. */
          holdLimitMs?: number;
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
    this.#holdDeadline = init.sentAt + (init.holdLimitMs ?? Infinity);
    this.#localDeadline = Math.min(
      init.sentAt + Math.min(init.lease.ttlMs, init.grantedMs ?? Infinity),
      this.#holdDeadline,
    );
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

  /**
   * Whether this handle still holds the lock, as far as this process knows (also while a
   * failed release is tried again, until the lease's deadline).
   */
  get isHeld(): boolean {
    if (this.#parent) return this.#parent.isHeld && this.#state === 'held';
    return this.#state === 'held' || this.#state === 'unreleased';
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
    // A background renewal raced this one: its answer decides the lease too.
    if (this.#inFlight > 0) await new Promise<void>((resolve) => this.#burstWaiters!.push(resolve));
    if (this.#state !== 'held') throw this.#notHeld();
  }

  /**
   * Releases the lock, recording the outcome for the next holder: `unlock()` or
   * `unlock(null)` for success, `unlock(error)` to hand the error over. A second call is
   * a no-op. When the release fails (a `LockDatabaseError`), it is tried again in the
   * background while the lease lasts, and a second call tries at once. After the lease
   * was lost, the release is still tried (the row may still be this holder's): it rejects
   * with {@link LockLostError} when the outcome could not be recorded.
   */
  unlock(error?: unknown): Promise<void> {
    return this.#release(error !== undefined && error !== null ? 'error' : 'released', error);
  }

  #release(outcome: ReleaseOutcome, error: unknown, via?: ReleaseVia): Promise<void> {
    if (this.#parent) {
      // A re-entered lock belongs to the enclosing section, which releases it.
      if (this.#state === 'held') this.#state = 'released';
      return Promise.resolve();
    }
    switch (this.#state) {
      case 'released':
        return Promise.resolve();
      case 'lost':
        return (this.#releasedAfterLoss ??= this.#releaseAfterLoss(outcome, error, via));
      case 'releasing':
        return this.#releasing!;
      case 'unreleased':
        return this.#retryRelease();
    }
    this.#state = 'releasing';
    this.#stopTimers();
    return (this.#releasing = this.#releaseNow(outcome, error, via));
  }

  async #releaseNow(outcome: ReleaseOutcome, error: unknown, via?: ReleaseVia): Promise<void> {
    const lease = this.#lease!;
    let released: boolean;
    try {
      released = await (via ?? lease.release)(outcome, error);
    } catch (cause) {
      this.#releasing = undefined;
      if (via) {
        // Its transaction rolled back: still held (not renewed), for the caller to release.
        if (this.#state === 'releasing') this.#state = 'held';
        throw cause;
      }
      const databaseError = new LockDatabaseError(
        MESSAGES.databaseError('release', this.name),
        cause,
      );
      lease.events.releaseFailed(this, databaseError);
      if (this.#state === 'releasing') {
        // Still ours until the lease's deadline: tried again meanwhile, never renewed.
        this.#state = 'unreleased';
        this.#retry = { outcome, error, attempts: 0, timer: undefined, running: undefined };
        this.#scheduleRetry();
      }
      throw databaseError;
    }
    this.#releasing = undefined;
    this.#released(released, outcome);
  }

  /** The answer of a release: released, or the row is no longer ours. */
  #released(released: boolean, outcome: ReleaseOutcome): void {
    if (!released) {
      this.#gone = true;
      this.#lose(MESSAGES.lostTakenOver);
      throw this.#lostError!;
    }
    this.#state = 'released';
    this.#stopTimers();
    this.#settle();
    this.#lease!.events.released(this, outcome === 'error', this.#lease!.grantedAt);
  }

  /** Tries a failed release again after a backoff, unless the lease's deadline comes first. */
  #scheduleRetry(): void {
    const retry = this.#retry!;
    this.#armDeadline();
    const delay = Math.min(
      RELEASE_RETRY.maxMs,
      this.#lease!.ttlMs / 6,
      RELEASE_RETRY.minMs * 2 ** retry.attempts,
    );
    if (performance.now() + delay >= this.#localDeadline) return; // the deadline ends it
    retry.timer = setTimeout(() => {
      retry.timer = undefined;
      this.#retryRelease().catch(() => undefined);
    }, delay);
    retry.timer.unref();
  }

  /** Tries a failed release again now (once at a time). */
  #retryRelease(): Promise<void> {
    const retry = this.#retry!;
    if (retry.running) return retry.running;
    clearTimeout(retry.timer);
    retry.timer = undefined;
    retry.attempts++;
    const lease = this.#lease!;
    const running = lease.release(retry.outcome, retry.error).then(
      (released) => {
        retry.running = undefined;
        if (this.#state === 'unreleased') return this.#released(released, retry.outcome);
        if (released && this.#state === 'lost') {
          // It went through after the local deadline: the outcome is recorded after all.
          this.#state = 'released';
          lease.events.released(this, retry.outcome === 'error', lease.grantedAt);
        }
      },
      (cause: unknown) => {
        retry.running = undefined;
        if (this.#state === 'unreleased') this.#scheduleRetry();
        throw new LockDatabaseError(MESSAGES.databaseError('release', this.name), cause);
      },
    );
    retry.running = running;
    return running;
  }

  /**
   * After a local loss the row may still be this holder's (its lease ran out and nobody
   * took it): the token-conditioned release records the outcome then. Otherwise the
   * outcome is lost, and the LockLostError says so.
   */
  async #releaseAfterLoss(
    outcome: ReleaseOutcome,
    error: unknown,
    via?: ReleaseVia,
  ): Promise<void> {
    if (this.#gone) throw this.#lostError!;
    const lease = this.#lease!;
    let released: boolean;
    try {
      released = await (via ?? lease.release)(outcome, error);
    } catch (cause) {
      throw new LockLostError(this.name, MESSAGES.lostOutcomeUnrecorded(this.#lostWhy), {
        cause: new LockDatabaseError(MESSAGES.databaseError('release', this.name), cause),
      });
    }
    if (!released) {
      this.#gone = true;
      if (outcome !== 'error') throw this.#lostError!;
      throw new LockLostError(this.name, MESSAGES.lostErrorDropped(this.#lostWhy), {
        cause: this.#lostError,
      });
    }
    this.#state = 'released';
    lease.events.released(this, outcome === 'error', lease.grantedAt);
  }

  #notHeld(): LockLostError {
    const parentLost = this.#parent === null ? undefined : this.#parent.#lostError;
    return this.#lostError ?? parentLost ?? new LockLostError(this.name, MESSAGES.lostReleased);
  }

  /**
   * Arms one timer: the next renewal (a third of the lease on), or the loss at the local
   * deadline when that comes first. The deadline is armed when a renewal falls due (see
   * `#renew`), so a lock released before then never had a second timer.
   */
  #schedule(now: number): void {
    this.#stopTimers();
    // Renewed up to its hold limit: no renewal can move it further.
    if (this.#localDeadline >= this.#holdDeadline) {
      this.#armDeadline();
      return;
    }
    const wait = Math.max(0, this.#localDeadline - now);
    // A third of the lease on (of what is left of a short hand-off lease, at once).
    const renewIn = Math.min(this.#lease!.ttlMs / 3, wait / 3);
    if (renewIn < wait) {
      this.#renewTimer = setTimeout(() => this.#renewDue(), renewIn);
      this.#renewTimer.unref();
    } else {
      this.#armDeadline();
    }
  }

  #renewDue(): void {
    this.#renewTimer = undefined;
    void this.#renew().catch(() => undefined);
  }

  /** Loses the lock at the local deadline unless a renewal moves it (armed again when it comes sooner). */
  #armDeadline(): void {
    if (this.#deadlineTimer !== undefined && this.#deadlineArmedAt <= this.#localDeadline) return;
    clearTimeout(this.#deadlineTimer);
    this.#deadlineArmedAt = this.#localDeadline;
    this.#deadlineTimer = setTimeout(
      () => this.#deadlinePassed(),
      Math.max(0, this.#localDeadline - performance.now()),
    );
    this.#deadlineTimer.unref();
  }

  #deadlinePassed(): void {
    this.#deadlineTimer = undefined;
    this.#deadlineArmedAt = Infinity;
    // Moved on by a renewal meanwhile, or a timer a little early by the monotonic clock.
    if (performance.now() < this.#localDeadline) return this.#armDeadline();
    if (this.#localDeadline >= this.#holdDeadline && this.#state === 'held') {
      this.#lose(MESSAGES.holdLimitExceeded, undefined, new HoldLimitExceededError(this.name));
      return;
    }
    this.#lose(this.#state === 'unreleased' ? MESSAGES.lostUnreleased : MESSAGES.lostExpired);
  }

  /** Sends one renewal; resolves once its answer (and those of renewals racing it) is applied. */
  async #renew(): Promise<void> {
    if (this.#state !== 'held') return;
    const lease = this.#lease!;
    const ttlMs = lease.ttlMs;
    const sentAt = performance.now();
    // If this statement runs last, the lease ends no sooner than this: never count on more
    // (and never past the hold limit, where the database caps it).
    const earliest = Math.min(sentAt + ttlMs, this.#holdDeadline);
    if (this.#inFlight++ === 0) {
      this.#burstDeadline = earliest;
      this.#burstEndUs = Infinity;
      this.#burstRenewed = false;
      this.#burstWaiters = [];
    } else if (earliest < this.#burstDeadline) {
      this.#burstDeadline = earliest;
    }
    if (earliest < this.#localDeadline) this.#localDeadline = earliest;
    this.#armDeadline();
    let end: number | null = null;
    let failed = false;
    let failure: unknown;
    try {
      end = await lease.renew(ttlMs);
    } catch (error) {
      failed = true;
      failure = error;
    }
    this.#inFlight--;
    if (end !== null) {
      this.#burstRenewed = true;
      if (end < this.#burstEndUs) this.#burstEndUs = end;
    } else if (!failed && this.#state === 'held') {
      // Not ours any more (or its lease ran out in the database).
      this.#lose(MESSAGES.lostTakenOver);
    }
    if (this.#inFlight === 0) this.#burstAnswered();
    if (!failed || this.#state !== 'held') return;
    lease.events.renewalFailed(this, failure);
    if (this.#inFlight === 0 && !this.#burstRenewed) {
      const left = this.#localDeadline - performance.now();
      if (left <= 0) {
        this.#lose(MESSAGES.lostExpired, failure);
        return;
      }
      // Try again soon, before the lease runs out; the deadline timer stays armed.
      clearTimeout(this.#renewTimer);
      this.#renewTimer = setTimeout(
        () => void this.#renew().catch(() => undefined),
        Math.min(ttlMs / 6, left / 2),
      );
      this.#renewTimer.unref();
    }
    throw failure;
  }

  /** Every renewal of a burst was answered: the lease is the earliest the burst may have set. */
  #burstAnswered(): void {
    const waiters = this.#burstWaiters;
    this.#burstWaiters = undefined;
    if (this.#burstRenewed && this.#state !== 'lost' && this.#state !== 'released') {
      this.#expiresAtUs = this.#burstEndUs;
      this.#expiresAt = undefined;
      this.#localDeadline = this.#burstDeadline;
      this.#lease!.events.renewed(this, this.expiresAt);
      // Held: the next renewal. A release that failed is never renewed, but the renewal
      // that was on its way moved its deadline.
      if (this.#state === 'held') this.#schedule(performance.now());
      else if (this.#state === 'unreleased') this.#armDeadline();
    }
    if (waiters) for (const resolve of waiters) resolve();
  }

  #lose(why: string, cause?: unknown, error?: LockLostError): void {
    if (this.#state === 'lost' || this.#state === 'released') return;
    this.#state = 'lost';
    this.#lostWhy = why;
    this.#stopTimers();
    this.#lostError =
      error ?? new LockLostError(this.name, why, cause === undefined ? undefined : { cause });
    this.#settle();
    this.#lease!.events.lost(this, this.#lostError, this.#lease!.grantedAt);
    this.#controller?.abort(this.#lostError);
  }

  #stopTimers(): void {
    clearTimeout(this.#renewTimer);
    clearTimeout(this.#deadlineTimer);
    this.#renewTimer = undefined;
    this.#deadlineTimer = undefined;
    this.#deadlineArmedAt = Infinity;
    if (this.#retry) {
      clearTimeout(this.#retry.timer);
      this.#retry.timer = undefined;
    }
  }

  #settle(): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#lease!.settled(this);
  }

  static {
    releaseWithOutcome = (lock, outcome, error, via) => lock.#release(outcome, error, via);
    abandonLock = (lock) => {
      if (lock.#state !== 'held' && lock.#state !== 'unreleased') return false;
      lock.#lose(MESSAGES.lostShutdownGrace);
      return true;
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

/**
 * A transactional section's release on success: `via` releases inside the section's
 * transaction and commits it (false, without committing, when the lock is no longer
 * ours: it rejects then with {@link LockLostError}). When `via` throws, the lock stays
 * held (no longer renewed) for the caller to release with the error. Internal.
 */
export function releaseThrough(
  lock: RemoteLock,
  via: (outcome: ReleaseOutcome, error: unknown) => Promise<boolean>,
): Promise<void> {
  return releaseWithOutcome(lock, 'released', undefined, via);
}

/** Releases a lock nobody used, keeping the outcome its previous holder stored. Internal. */
export function passOnLock(lock: RemoteLock): Promise<void> {
  return releaseWithOutcome(lock, 'pass', undefined);
}

/**
 * Shutdown, at the end of its grace: a lock whose section still runs (or whose failed
 * release is still tried) is lost here, its `signal` aborts and its lease is left to
 * expire. False when it was not held (released, lost, or its release is on its way). Internal.
 */
export function abandon(lock: RemoteLock): boolean {
  return abandonLock(lock);
}
