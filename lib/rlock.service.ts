import { performance } from 'node:perf_hooks';
import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common';
import type { Observable } from 'rxjs';
import type { AcquireResult, LockDialect, StoredLock } from './dialects/dialect.interface';
import { AcquireTimeoutError } from './errors/acquire-timeout.error';
import { ErrorCodec } from './errors/error-codec';
import { ForceReleasedError } from './errors/force-released.error';
import { InvalidArgumentError } from './errors/invalid-argument.error';
import { LeaseExpiredError } from './errors/lease-expired.error';
import { LockDatabaseError } from './errors/lock-database.error';
import { LockReentryError } from './errors/lock-reentry.error';
import { RLockConfigurationError } from './errors/rlock-configuration.error';
import { ShuttingDownError } from './errors/shutting-down.error';
import { LockEventEmitter } from './events/lock-event-emitter';
import type { RLockEvent } from './events/rlock-event.interface';
import {
  LOCK_OPTION_KEYS,
  WITH_LOCK_OPTION_KEYS,
  type LockOptions,
  type WithLockOptions,
} from './interfaces/lock-options.interface';
import type { LockOutcome, LockState } from './interfaces/lock-state.interface';
import { courtesyDelay, retryDelay, untilLeaseEnd } from './internal/backoff';
import { lockContext, runInLockScope } from './internal/lock-context';
import { lockKey } from './internal/lock-key';
import { ownerToken } from './internal/owner-token';
import type { ResolvedRLockOptions } from './internal/resolve-options';
import {
  assertDuration,
  assertFunction,
  assertLockName,
  assertOptionalBoolean,
  assertOptionalSignal,
  assertOptions,
  describe,
} from './internal/validate';
import { WaitLines } from './internal/wait-lines';
import { reenteredLock, RemoteLock, stopRenewal, unlockWithError } from './remote-lock';
import { RLOCK_DIALECT, RLOCK_LIMITS, RLOCK_MODULE_OPTIONS } from './rlock.constants';
import { MESSAGES } from './rlock.messages';

interface CallOptions {
  ttlMs: number;
  reentrant: boolean;
  signal: AbortSignal | undefined;
  /** performance.now() when the call began. */
  startedAt: number;
}

/**
 * Takes, inspects and administers remote locks. Injected wherever `RLockModule` is
 * imported (it is global by default).
 * @publicApi
 */
@Injectable()
export class RLockService implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(RLockService.name);
  private readonly codec: ErrorCodec;
  private readonly lines = new WaitLines();
  private readonly held = new Set<RemoteLock>();
  private readonly emitter: LockEventEmitter;
  private closing = false;

  constructor(
    @Inject(RLOCK_MODULE_OPTIONS) private readonly options: ResolvedRLockOptions,
    @Inject(RLOCK_DIALECT) private readonly dialect: LockDialect,
  ) {
    this.codec = new ErrorCodec(options.errors, {
      maxBytes: options.maxErrorBytes,
      includeStack: options.includeStack,
    });
    this.emitter = new LockEventEmitter(this.logger, options.logStoredErrors ?? false);
  }

  /** Typed events of this process's lock traffic (attempts, grants, releases, losses, …); cheap when nobody subscribes. */
  get events$(): Observable<RLockEvent> {
    return this.emitter.events$;
  }

  /** Checks the lock table and opens the dialect's connections. */
  async onModuleInit(): Promise<void> {
    let exists: boolean;
    try {
      exists = await this.dialect.init();
    } catch (error) {
      throw new LockDatabaseError(MESSAGES.databaseError('startup', undefined), error);
    }
    if (!exists) throw new RLockConfigurationError(MESSAGES.tableMissing(this.options.tableName));
    this.dialect.onRelease?.((key) => this.lines.wake(key));
  }

  /** Stops renewals, turns waiters away and closes the dialect's own connections. */
  async onApplicationShutdown(): Promise<void> {
    this.closing = true;
    this.lines.wakeAll();
    for (const lock of this.held) stopRenewal(lock);
    await this.dialect.close();
  }

  /**
   * Waits for the lock (up to `acquireTimeoutMs`; `0` makes exactly one attempt) and
   * resolves with the held lock; rejects with {@link AcquireTimeoutError} when the time
   * runs out. Call `unlock(error?)` when done.
   */
  lock(name: string, acquireTimeoutMs?: number, options?: LockOptions): Promise<RemoteLock> {
    // Not async (two promises less per call), but it never throws: errors reject.
    try {
      assertLockName(name);
      const timeoutMs = this.timeout(acquireTimeoutMs);
      const call = this.callOptions(options, LOCK_OPTION_KEYS);
      const reentered = this.reenter(name, call.reentrant);
      return reentered ? Promise.resolve(reentered) : this.acquire(name, timeoutMs, call);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** One attempt: the held lock, or `null` when someone else holds it. */
  async tryLock(name: string, options?: LockOptions): Promise<RemoteLock | null> {
    assertLockName(name);
    const call = this.callOptions(options, LOCK_OPTION_KEYS);
    const reentered = this.reenter(name, call.reentrant);
    if (reentered) return reentered;
    this.assertOpen(call.signal);
    return this.attempt(name, lockKey(name), call, false);
  }

  /**
   * Runs `fn` holding the lock: releases it when `fn` settles, with `fn`'s error if it
   * throws (then rethrows that very error). Inside `fn`, `current()` returns the lock and
   * asking again for the same name fails with {@link LockReentryError}.
   */
  async withLock<T>(
    name: string,
    options: number | WithLockOptions | undefined,
    fn: (lock: RemoteLock) => T | Promise<T>,
  ): Promise<T> {
    assertLockName(name);
    const opts = typeof options === 'number' ? undefined : options;
    const call = this.callOptions(opts, WITH_LOCK_OPTION_KEYS);
    const timeoutMs = this.timeout(typeof options === 'number' ? options : opts?.acquireTimeoutMs);
    assertFunction(fn, 'fn');
    const enclosing = lockContext.getStore()?.held.get(name);
    if (enclosing?.isHeld) {
      if (!call.reentrant) throw new LockReentryError(name);
      return fn(enclosing);
    }
    const lock = await this.acquire(name, timeoutMs, call);
    return await this.runHolding(lock, fn);
  }

  /**
   * Runs `fn` inside the locked section of `lock` and releases it with the outcome.
   * Used by `withLock()` and `@WithRemoteLock`.
   */
  async runHolding<T>(lock: RemoteLock, fn: (lock: RemoteLock) => T | Promise<T>): Promise<T> {
    let result: T;
    try {
      result = await runInLockScope(lock, () => fn(lock));
    } catch (error) {
      try {
        await unlockWithError(lock, error);
      } catch {
        // Already reported as a release failure or a loss (events$ and a warning).
      }
      throw error;
    }
    await lock.unlock();
    return result;
  }

  /** Whether `RLockModule.forRoot({ disabled: true })` turned locking off for decorated methods. */
  get disabled(): boolean {
    return this.options.disabled;
  }

  /** The lock held by the running locked section (`withLock` or `@WithRemoteLock`), or null. */
  current(): RemoteLock | null {
    return lockContext.getStore()?.current ?? null;
  }

  /** The stored state of one lock, or null if it was never taken (or was purged). */
  async inspect(name: string): Promise<LockState | null> {
    assertLockName(name);
    const row = await this.database('inspect', name, () => this.dialect.inspect(lockKey(name)));
    return row === null ? null : this.toState(row);
  }

  /** The stored state of every lock, ordered by name. */
  async list(): Promise<LockState[]> {
    const rows = await this.database('list', undefined, () => this.dialect.list());
    return rows.map((row) => this.toState(row));
  }

  /**
   * Frees a lock whoever holds it (an operator's tool for a stuck lock). The fence is
   * bumped, the evicted holder's renewals fail and its `signal` aborts; the next holder
   * finds a {@link ForceReleasedError} with `reason` in `lastError`. Resolves to false
   * when the lock was not held.
   */
  async forceRelease(name: string, reason?: string): Promise<boolean> {
    assertLockName(name);
    if (reason !== undefined && (typeof reason !== 'string' || reason.length > 1000)) {
      throw new InvalidArgumentError('reason', MESSAGES.invalid.reason(describe(reason)));
    }
    const error = this.codec.encode(new ForceReleasedError(reason));
    const released = await this.database('force release', name, () =>
      this.dialect.forceRelease(lockKey(name), error),
    );
    this.emitter.forceReleased(name, reason, released);
    return released;
  }

  /**
   * Deletes the rows of locks that are free (or whose lease ran out) and were not used
   * for `olderThan` milliseconds (database clock). Resolves to how many were deleted.
   */
  async purge(options: { olderThan: number }): Promise<number> {
    assertOptions(options, 'purge options', ['olderThan']);
    assertDuration(options?.olderThan, 'olderThan', 0, Number.MAX_SAFE_INTEGER / 1000);
    return this.database('purge', undefined, () => this.dialect.purge(options.olderThan));
  }

  /**
   * Health check: resolves true when the lock table answers, false when it is missing;
   * rejects with {@link LockDatabaseError} when the database does not answer.
   */
  async probe(): Promise<boolean> {
    return this.database('health check', undefined, () =>
      this.dialect.probe ? this.dialect.probe() : this.dialect.init(),
    );
  }

  private async acquire(name: string, timeoutMs: number, call: CallOptions): Promise<RemoteLock> {
    this.assertOpen(call.signal);
    const key = lockKey(name);
    if (timeoutMs === 0) {
      const lock = await this.attempt(name, key, call, false);
      if (lock) return lock;
      this.emitter.timedOut(name, timeoutMs, call.startedAt);
      throw new AcquireTimeoutError(name, timeoutMs);
    }
    const deadline = performance.now() + timeoutMs;
    const waiter = this.lines.join(key);
    try {
      // Database clock of the first failed attempt: how long this call has waited.
      let waitingSinceUs: number | null = null;
      // Fence of this process's last holding when it queued behind the others (courtesy).
      let queuedAfterFence: number | undefined;
      for (let attempts = 0, slept = false; ; slept = true) {
        let delay = Infinity;
        // Woken at or past the deadline: give up without another attempt, so that the
        // local waiters timing out together do not each hit the database in turn.
        const overdue = slept && performance.now() >= deadline;
        // Just released here after contention: when the dialect lines waiting processes
        // up, take a place behind the others instead of re-taking the lock at once.
        const courtesy = this.lines.courtesyLeft(key);
        if (courtesy > 0 && this.dialect.queue?.(key) === 'woken') {
          queuedAfterFence ??= this.lines.releasedFence(key);
          delay = courtesyDelay(courtesy);
        } else if (!overdue && this.lines.isFirst(key, waiter) && !this.lines.isHeldHere(key)) {
          const result = await this.attemptRaw(name, key, call, attempts > 0, waitingSinceUs);
          if (result instanceof RemoteLock) {
            // Others held it since this process let them go first: still contended, so
            // its next release queues it again instead of costing a refused attempt.
            if (queuedAfterFence !== undefined && result.fence > queuedAfterFence + 1) {
              this.lines.contended(key);
            }
            // Its place in line (if any) is kept until the release has committed.
            return result;
          }
          this.lines.contended(key);
          waitingSinceUs ??= result.nowUs;
          const wakeUp = this.dialect.queue?.(key) ?? 'polls';
          delay = untilLeaseEnd(
            retryDelay(
              attempts++,
              this.options.backoffMinMs,
              this.options.backoffMaxMs,
              wakeUp === 'woken',
            ),
            result.expiresAtUs,
            result.nowUs,
          );
        }
        const left = deadline - performance.now();
        if (left <= 0) {
          this.emitter.timedOut(name, timeoutMs, call.startedAt);
          throw new AcquireTimeoutError(name, timeoutMs);
        }
        await waiter.sleep(Math.min(delay, left), call.signal);
        this.assertOpen(call.signal);
      }
    } finally {
      this.lines.leave(key, waiter);
      if (!this.lines.hasWaiters(key) && !this.lines.isHeldHere(key)) this.dialect.dequeue?.(key);
    }
  }

  private async attempt(
    name: string,
    key: string,
    call: CallOptions,
    readFirst: boolean,
  ): Promise<RemoteLock | null> {
    const result = await this.attemptRaw(name, key, call, readFirst);
    return result instanceof RemoteLock ? result : null;
  }

  private async attemptRaw(
    name: string,
    key: string,
    call: CallOptions,
    readFirst: boolean,
    waitingSinceUs: number | null = null,
  ): Promise<RemoteLock | Extract<AcquireResult, { acquired: false }>> {
    const token = ownerToken();
    this.emitter.attempt(name);
    const sentAt = performance.now();
    let result: AcquireResult;
    // As `database()` does, without its extra closure and promise: this is the hot path.
    try {
      result = await this.dialect.acquire({
        key,
        name,
        token,
        holder: this.options.holder,
        ttlMs: call.ttlMs,
        leaseExpiredMessage: MESSAGES.leaseExpired,
        readFirst,
        waitingSinceUs,
      });
    } catch (error) {
      throw new LockDatabaseError(MESSAGES.databaseError('acquire', name), error);
    }
    if (!result.acquired) return result;
    const lock = new RemoteLock({
      name,
      fence: result.fence,
      lastError: this.lastError(result.lastOutcome, result.lastError),
      expiresAtUs: result.expiresAtUs,
      sentAt,
      lease: {
        key,
        token,
        ttlMs: call.ttlMs,
        renew: (ttlMs) =>
          this.database('renewal', name, () => this.dialect.extend(key, token, ttlMs)),
        release: (failed, error) => {
          try {
            return this.dialect.release({
              key,
              token,
              outcome: failed ? 'error' : 'released',
              error: failed ? this.codec.encode(error) : null,
            });
          } catch (databaseError) {
            // As from an async function: the caller sees a rejection, never a throw.
            return Promise.reject(databaseError);
          }
        },
        events: this.emitter,
        grantedAt: performance.now(),
        settled: (settledLock) => {
          this.held.delete(settledLock);
          this.lines.released(key, settledLock.fence);
          // The release has committed (or the lock is lost): call the next process in line.
          if (!this.lines.isHeldHere(key)) this.dialect.dequeue?.(key);
        },
      },
    });
    this.held.add(lock);
    this.lines.acquired(key);
    this.emitter.acquired(lock, result.lastOutcome, call.startedAt);
    if (call.signal?.aborted || this.closing) {
      // The caller gave up while the attempt was on its way: do not leave the lock held.
      await lock.unlock().catch(() => undefined);
      this.assertOpen(call.signal);
    }
    return lock;
  }

  private reenter(name: string, reentrant: boolean): RemoteLock | null {
    const enclosing = lockContext.getStore()?.held.get(name);
    if (!enclosing?.isHeld) return null;
    if (!reentrant) throw new LockReentryError(name);
    return reenteredLock(enclosing);
  }

  private lastError(outcome: LockOutcome | null, stored: string | null): Error | null {
    if (outcome === null || outcome === 'released') return null;
    if (stored !== null) return this.codec.decode(stored);
    return outcome === 'expired' ? new LeaseExpiredError() : new ForceReleasedError();
  }

  private toState(row: StoredLock): LockState {
    const status =
      row.token === null ? 'free' : (row.expiresAtUs ?? 0) > row.nowUs ? 'held' : 'expired';
    const date = (us: number | null) => (us === null ? null : new Date(us / 1000));
    const state: LockState = {
      name: row.name,
      status,
      holder: row.holder,
      fence: row.fence,
      acquiredAt: date(row.acquiredAtUs),
      expiresAt: status === 'free' ? null : date(row.expiresAtUs),
      releasedAt: date(row.releasedAtUs),
      lastOutcome: row.lastOutcome,
      lastError: this.lastError(row.lastOutcome, row.lastError),
    };
    if (status === 'expired') {
      state.lastOutcome = 'expired';
      state.lastError = new LeaseExpiredError(MESSAGES.leaseExpired, {
        holder: row.holder,
        fence: row.fence,
        expiredAt: row.expiresAtUs === null ? null : Math.floor(row.expiresAtUs / 1000),
      });
    }
    return state;
  }

  private timeout(acquireTimeoutMs: number | undefined): number {
    if (acquireTimeoutMs === undefined) return this.options.acquireTimeoutMs;
    assertDuration(acquireTimeoutMs, 'acquireTimeoutMs', 0);
    return acquireTimeoutMs;
  }

  private callOptions(options: unknown, known: readonly string[]): CallOptions {
    if (options === undefined) {
      return {
        ttlMs: this.options.ttlMs,
        reentrant: false,
        signal: undefined,
        startedAt: performance.now(),
      };
    }
    assertOptions(options, 'options', known);
    const o = (options ?? {}) as LockOptions;
    if (o.ttlMs !== undefined) assertDuration(o.ttlMs, 'ttlMs', RLOCK_LIMITS.minTtlMs);
    assertOptionalBoolean(o.reentrant, 'reentrant');
    assertOptionalSignal(o.signal, 'signal');
    return {
      ttlMs: o.ttlMs ?? this.options.ttlMs,
      reentrant: o.reentrant ?? false,
      signal: o.signal,
      startedAt: performance.now(),
    };
  }

  private assertOpen(signal: AbortSignal | undefined): void {
    if (this.closing) throw new ShuttingDownError();
    signal?.throwIfAborted();
  }

  private async database<T>(
    operation: string,
    name: string | undefined,
    run: () => Promise<T>,
  ): Promise<T> {
    try {
      return await run();
    } catch (error) {
      throw new LockDatabaseError(MESSAGES.databaseError(operation, name), error);
    }
  }
}
