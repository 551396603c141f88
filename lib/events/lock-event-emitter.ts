import { performance } from 'node:perf_hooks';
import { Logger } from '@nestjs/common';
import { Subject, type Observable } from 'rxjs';
import { LeaseExpiredError } from '../errors/lease-expired.error';
import type { LockLostError } from '../errors/lock-lost.error';
import type { LockOutcome } from '../interfaces/lock-state.interface';
import { MESSAGES } from '../rlock.messages';
import type { RLockEvent } from './rlock-event.interface';

/** What the emitter needs to know about a held lock. */
interface LockInfo {
  readonly name: string;
  readonly fence: number;
}

/**
 * The one place the lock path reports to: turns each step into a typed event on
 * `events$` (built only while someone subscribes) and a log line at a sensible level
 * (losses and failures warn, grants debug). Stored error payloads reach the log only
 * with `logStoredErrors`. Internal: created by `RLockService`, handed to each lease.
 */
export class LockEventEmitter {
  private readonly subject = new Subject<RLockEvent>();
  /** The minimum hold a release left (µs, database clock), until its `released` event. */
  private readonly holdUntil = new WeakMap<LockInfo, number>();
  /** The events, for `RLockService.events$`. */
  readonly events$: Observable<RLockEvent> = this.subject.asObservable();

  constructor(
    private readonly logger: Logger,
    private readonly logStoredErrors: boolean,
  ) {}

  /** An acquisition attempt is about to be sent. */
  attempt(name: string): void {
    if (this.subject.observed) this.subject.next({ type: 'attempt', name, at: new Date() });
  }

  /**
   * A grant; `startedAt` is `performance.now()` when the call began, `holdLimitUs` the end
   * of a `maxHoldMs` holding (database clock) or null.
   */
  acquired(
    lock: LockInfo & { readonly lastError: Error | null },
    lastOutcome: LockOutcome | null,
    startedAt: number,
    holdLimitUs: number | null = null,
  ): void {
    const takeover = lastOutcome === 'expired' && lock.lastError instanceof LeaseExpiredError;
    const debug = Logger.isLevelEnabled('debug');
    if (!this.subject.observed && !debug && !takeover) return;
    const waitMs = performance.now() - startedAt;
    const { name, fence, lastError } = lock;
    if (debug) {
      this.logger.debug(
        MESSAGES.log.acquired(name, fence, waitMs, lastOutcome, this.payload(lastError)),
      );
    }
    if (takeover) {
      const previous = lastError as LeaseExpiredError;
      this.logger.warn(MESSAGES.log.expiredTakeover(name, fence, previous.holder, previous.fence));
    }
    if (!this.subject.observed) return;
    const at = new Date();
    const holdLimit = holdLimitUs === null ? null : new Date(holdLimitUs / 1000);
    this.subject.next({
      type: 'acquired',
      name,
      at,
      fence,
      waitMs,
      lastOutcome,
      lastError,
      holdLimit,
    });
    if (takeover) {
      this.subject.next({
        type: 'expired-takeover',
        name,
        at,
        fence,
        lastError: lastError as LeaseExpiredError,
      });
    }
  }

  /** A waiting call ran out of time. */
  timedOut(name: string, timeoutMs: number, startedAt: number): void {
    const debug = Logger.isLevelEnabled('debug');
    if (!this.subject.observed && !debug) return;
    const waitMs = performance.now() - startedAt;
    if (debug) this.logger.debug(MESSAGES.log.timedOut(name, timeoutMs));
    this.subject.next({ type: 'timed-out', name, at: new Date(), timeoutMs, waitMs });
  }

  /** The lease was renewed until `expiresAt`. */
  renewed(lock: LockInfo, expiresAt: Date): void {
    if (!this.subject.observed) return;
    const { name, fence } = lock;
    this.subject.next({ type: 'renewed', name, at: new Date(), fence, expiresAt });
  }

  /** A renewal failed on a database error. */
  renewalFailed(lock: LockInfo, error: unknown): void {
    this.logger.warn(MESSAGES.log.renewalFailed(lock.name, describeError(error)));
    if (!this.subject.observed) return;
    const { name, fence } = lock;
    this.subject.next({ type: 'renewal-failed', name, at: new Date(), fence, error });
  }

  /**
   * A release (about to be reported by `released`) left the lock taken until `holdUntilUs`
   * (database clock) for its minimum hold.
   */
  heldUntil(lock: LockInfo, holdUntilUs: number): void {
    if (this.subject.observed) this.holdUntil.set(lock, holdUntilUs);
  }

  /** Released by this process; `grantedAt` is `performance.now()` at the grant. */
  released(lock: LockInfo, failed: boolean, grantedAt: number): void {
    const holdUntilUs = this.holdUntil.get(lock);
    if (holdUntilUs !== undefined) this.holdUntil.delete(lock);
    const debug = Logger.isLevelEnabled('debug');
    if (!this.subject.observed && !debug) return;
    const holdMs = performance.now() - grantedAt;
    const outcome = failed ? 'error' : 'released';
    const { name, fence } = lock;
    if (debug) this.logger.debug(MESSAGES.log.released(name, fence, holdMs, outcome));
    const holdUntil = holdUntilUs === undefined ? null : new Date(holdUntilUs / 1000);
    this.subject.next({
      type: 'released',
      name,
      at: new Date(),
      fence,
      holdMs,
      outcome,
      holdUntil,
    });
  }

  /** `unlock()` failed on a database error. */
  releaseFailed(lock: LockInfo, error: unknown): void {
    this.logger.warn(MESSAGES.log.releaseFailed(lock.name, describeError(error)));
    if (!this.subject.observed) return;
    const { name, fence } = lock;
    this.subject.next({ type: 'release-failed', name, at: new Date(), fence, error });
  }

  /** The lease was lost while held. */
  lost(lock: LockInfo, error: LockLostError, grantedAt: number): void {
    this.logger.warn(error.message);
    if (!this.subject.observed) return;
    const { name, fence } = lock;
    const holdMs = performance.now() - grantedAt;
    this.subject.next({ type: 'lost', name, at: new Date(), fence, holdMs, error });
  }

  /** This process force-released a lock. */
  forceReleased(name: string, reason: string | undefined, released: boolean): void {
    this.logger.log(MESSAGES.log.forceReleased(name, released, reason));
    if (this.subject.observed) {
      this.subject.next({ type: 'force-released', name, at: new Date(), reason, released });
    }
  }

  private payload(error: Error | null): string | undefined {
    if (!this.logStoredErrors || error === null) return undefined;
    return describeError(error);
  }
}

function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? ` (${error.cause.message})` : '';
  return `${error.name}: ${error.message}${cause}`;
}
