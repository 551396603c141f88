import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import {
  Inject,
  Injectable,
  Logger,
  type BeforeApplicationShutdown,
  type OnApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common';
import type { Observable } from 'rxjs';
import type { EntityManager, QueryRunner } from 'typeorm';
import type { IsolationLevel } from 'typeorm/driver/types/IsolationLevel';
import type {
  AcquireResult,
  Granted,
  LockDialect,
  NotGranted,
  Place,
  ReleaseResult,
  StoredLock,
} from './dialects/dialect.interface';
import { AcquireTimeoutError } from './errors/acquire-timeout.error';
import { RLOCK_SCHEMA_VERSION } from './entities/schema-version';
import { ErrorCodec } from './errors/error-codec';
import { RemoteLockError } from './errors/remote-lock.error';
import { ForceReleasedError } from './errors/force-released.error';
import { HoldLimitExceededError } from './errors/hold-limit-exceeded.error';
import { InvalidArgumentError } from './errors/invalid-argument.error';
import { LeaseExpiredError } from './errors/lease-expired.error';
import { LockDatabaseError } from './errors/lock-database.error';
import { LockLostError } from './errors/lock-lost.error';
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
import type { ForceReleaseOptions } from './interfaces/force-release-options.interface';
import type { LockOutcome, LockState } from './interfaces/lock-state.interface';
import { lockContext, runInLockScope } from './internal/lock-context';
import { lockKey } from './internal/lock-key';
import { ownerToken } from './internal/owner-token';
import type { ResolvedRLockOptions } from './internal/resolve-options';
import {
  assertDuration,
  assertFunction,
  assertLockName,
  assertOptionalBoolean,
  assertOptionalIsolationLevel,
  assertOptionalSignal,
  assertOptions,
  describe,
  parsePeriod,
} from './internal/validate';
import {
  abandon,
  passOnLock,
  reenteredLock,
  releaseThrough,
  RemoteLock,
  unlockWithError,
  type ReleaseOutcome,
} from './remote-lock';
import { RLOCK_DIALECT, RLOCK_LIMITS, RLOCK_MODULE_OPTIONS } from './rlock.constants';
import { MESSAGES } from './rlock.messages';
import { ATTEMPT_GRACE_MS, HANDOFF_LEASE_MS } from './waiting/waiting.constants';
import { WaitingRoom } from './waiting/waiting-room';

interface CallOptions {
  ttlMs: number;
  reentrant: boolean;
  signal: AbortSignal | undefined;
  /** performance.now() when the call began. */
  startedAt: number;
  minHoldMs: number | null;
  maxHoldMs: number | null;
  oncePerMs: number | null;
  /** A transactional section (`withLock` only), with its isolation level; null: none. */
  transaction: SectionTransaction | null;
}

/** A transactional section's transaction. */
interface SectionTransaction {
  isolationLevel?: IsolationLevel;
}

/**
 * Takes, inspects and administers remote locks. Injected wherever `RLockModule` is
 * imported (it is global by default).
 * @publicApi
 */
@Injectable()
export class RLockService
  implements OnModuleInit, BeforeApplicationShutdown, OnApplicationShutdown
{
  private readonly logger = new Logger(RLockService.name);
  private readonly codec: ErrorCodec;
  private readonly held = new Set<RemoteLock>();
  /** The held locks by key (a process may hold one key twice only through re-entry). */
  private readonly heldByKey = new Map<string, Set<RemoteLock>>();
  private readonly emitter: LockEventEmitter;
  private readonly room: WaitingRoom<RemoteLock>;
  /** Keys with a first attempt of this process on its way, and how many. */
  private readonly attempting = new Map<string, number>();
  /** This process, as its places in the lock lines name it. */
  private readonly owner = randomBytes(6).toString('hex');
  private closing = false;
  /** The shutdown's grace (see `beforeApplicationShutdown`), once it began. */
  private draining: Promise<void> | undefined;
  /** Called when the last held lock settles during the grace. */
  private drained: (() => void) | undefined;
  /** What a transactional section's release needs of a held lock (its row and minimum hold). */
  private readonly releases = new WeakMap<
    RemoteLock,
    { key: string; token: string; minHoldMs: number | null }
  >();

  constructor(
    @Inject(RLOCK_MODULE_OPTIONS) private readonly options: ResolvedRLockOptions,
    @Inject(RLOCK_DIALECT) private readonly dialect: LockDialect,
  ) {
    this.codec = new ErrorCodec(options.errors, {
      maxBytes: options.maxErrorBytes,
      includeStack: options.includeStack,
    });
    this.emitter = new LockEventEmitter(this.logger, options.logStoredErrors ?? false);
    this.room = new WaitingRoom<RemoteLock>(
      dialect,
      {
        attempt: (request, token, place) =>
          this.attemptRaw(request.name, request.key, request, token, place),
        handedOver: (request, token, grant, sentAt) =>
          this.toLock(request.name, request.key, token, request, grant, sentAt),
        passOn: async (key, token, lock) => {
          if (lock) await passOnLock(lock);
          else await this.release(key, token, 'pass', undefined, null);
        },
        timedOut: (request) =>
          this.emitter.timedOut(request.name, request.timeoutMs, request.startedAt),
        heldHere: (key) => this.heldHere(key),
      },
      {
        owner: this.owner,
        holder: options.holder,
        backoffMinMs: options.backoffMinMs,
        backoffMaxMs: options.backoffMaxMs,
      },
    );
  }

  /** Typed events of this process's lock traffic (attempts, grants, releases, losses, …); cheap when nobody subscribes. */
  get events$(): Observable<RLockEvent> {
    return this.emitter.events$;
  }

  /** Checks the lock tables and their schema version, and opens the dialect's connections. */
  async onModuleInit(): Promise<void> {
    let exists: boolean;
    let version = 0;
    try {
      exists = await this.dialect.init();
      if (exists) version = await this.dialect.schemaVersion(RLOCK_SCHEMA_VERSION);
    } catch (error) {
      throw new LockDatabaseError(MESSAGES.databaseError('startup', undefined), error);
    }
    const table = this.options.tableName;
    if (!exists) throw new RLockConfigurationError(MESSAGES.tableMissing(table));
    if (version < RLOCK_SCHEMA_VERSION) {
      throw new RLockConfigurationError(
        MESSAGES.schemaOutdated(table, version, RLOCK_SCHEMA_VERSION),
      );
    }
    if (version > RLOCK_SCHEMA_VERSION) {
      throw new RLockConfigurationError(MESSAGES.schemaNewer(table, version, RLOCK_SCHEMA_VERSION));
    }
    // Known once the dialect has seen its database (Galera, a pooler: no doorbell).
    if (this.options.waitConnections > 0) this.room.useDoorbell(this.dialect.createDoorbell?.());
    // The second: renewals never wait behind lock attempts, or a pool the application filled.
    if (this.options.waitConnections > 1) this.dialect.useLeaseConnection?.();
  }

  /**
   * Shutdown, before any module closes its connections: new locks and waiters fail with
   * ShuttingDownError (waiters give their places up), while held locks keep renewing for
   * `shutdownGraceMs` so that their sections finish and release with their real outcomes.
   * Sections still running at the end of the grace get their `signal` aborted and their
   * locks are left to expire (never freed under running work); a warning names them.
   */
  async beforeApplicationShutdown(): Promise<void> {
    await this.drain();
  }

  /** Shutdown, last: the grace (if `beforeApplicationShutdown` did not run it), then closes the dialect's own connections. */
  async onApplicationShutdown(): Promise<void> {
    await this.drain();
    await this.dialect.close();
  }

  private drain(): Promise<void> {
    return (this.draining ??= this.drainHeld());
  }

  private async drainHeld(): Promise<void> {
    this.closing = true;
    const roomClosed = this.room.close();
    if (this.held.size > 0) {
      const graceMs = this.options.shutdownGraceMs;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => (this.drained = resolve)),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs))),
      ]);
      clearTimeout(timer);
      this.drained = undefined;
      const abandoned = [...this.held].filter((lock) => abandon(lock)).map((lock) => lock.name);
      if (abandoned.length > 0) {
        this.logger.warn(MESSAGES.log.shutdownAbandoned(abandoned, graceMs));
      }
    }
    await roomClosed;
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
    return this.attempt(name, lockKey(name), call);
  }

  /**
   * Runs `fn` holding the lock: releases it when `fn` settles, with `fn`'s error if it
   * throws (then rethrows that very error). Inside `fn`, `current()` returns the lock and
   * asking again for the same name fails with {@link LockReentryError}.
   */
  withLock<T>(
    name: string,
    options: WithLockOptions & { transactional: true },
    fn: (lock: RemoteLock, manager: EntityManager) => T | Promise<T>,
  ): Promise<T>;
  withLock<T>(
    name: string,
    options: number | WithLockOptions | undefined,
    fn: (lock: RemoteLock) => T | Promise<T>,
  ): Promise<T>;
  async withLock<T>(
    name: string,
    options: number | WithLockOptions | undefined,
    fn: (lock: RemoteLock, manager: EntityManager) => T | Promise<T>,
  ): Promise<T> {
    assertLockName(name);
    const opts = typeof options === 'number' ? undefined : options;
    const call = this.callOptions(opts, WITH_LOCK_OPTION_KEYS);
    const timeoutMs = this.timeout(typeof options === 'number' ? options : opts?.acquireTimeoutMs);
    assertFunction(fn, 'fn');
    const enclosing = lockContext.getStore()?.held.get(name);
    if (enclosing?.isHeld) {
      if (!call.reentrant) throw new LockReentryError(name);
      if (call.transaction) {
        throw new InvalidArgumentError('transactional', MESSAGES.invalid.transactionalReentry);
      }
      // A handle of its own, as lock() gives: its unlock() leaves the enclosing lock held.
      return this.runHolding(reenteredLock(enclosing), fn as (lock: RemoteLock) => T);
    }
    const source = call.transaction ? this.transactionSource() : undefined;
    const lock = await this.acquire(name, timeoutMs, call);
    if (source && call.transaction) return this.runTransactional(lock, fn, call.transaction);
    return await this.runHolding(lock, fn as (lock: RemoteLock) => T);
  }

  /**
   * Runs `fn` inside the locked section of `lock` and releases it with the outcome.
   * Used by `withLock()` and `@WithRemoteLock`. With `transaction`, a transactional
   * section (see `WithLockOptions.transactional`): `fn` gets the transaction's manager.
   */
  async runHolding<T>(
    lock: RemoteLock,
    fn: (lock: RemoteLock, manager: EntityManager) => T | Promise<T>,
    transaction?: SectionTransaction,
  ): Promise<T> {
    if (transaction) return this.runTransactional(lock, fn, transaction);
    let result: T;
    try {
      result = await runInLockScope(lock, () => (fn as (lock: RemoteLock) => T)(lock));
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

  /** The data source transactional sections run on; throws when the dialect has none. */
  private transactionSource() {
    const source = this.dialect.dataSource;
    if (!source || !this.dialect.releaseWithin) {
      throw new RLockConfigurationError(
        MESSAGES.invalid.transactionalUnsupported(this.dialect.database),
      );
    }
    return source;
  }

  /**
   * A transactional section: `fn` in a transaction on the lock store's data source; on
   * success the release runs inside it and commits with the work (the next holder is rung
   * after the commit); a release that matches nothing (the lock was taken over) rolls it
   * all back with LockLostError. On a throw: rolled back, then released with the error
   * outside it, and the error rethrown.
   */
  private async runTransactional<T>(
    lock: RemoteLock,
    fn: (lock: RemoteLock, manager: EntityManager) => T | Promise<T>,
    transaction: SectionTransaction,
  ): Promise<T> {
    if (lockContext.getStore()?.held.get(lock.name)?.isHeld) {
      // A re-entered lock: the enclosing section releases it (and owns any transaction).
      await lock.unlock();
      throw new InvalidArgumentError('transactional', MESSAGES.invalid.transactionalReentry);
    }
    let runner: QueryRunner | undefined;
    let result: T;
    try {
      runner = this.transactionSource().createQueryRunner();
      await runner.connect();
      await runner.startTransaction(transaction.isolationLevel);
      await this.dialect.beginWithin?.(runner);
      const manager = runner.manager;
      result = await runInLockScope(lock, () => fn(lock, manager));
    } catch (error) {
      await this.rollback(runner);
      try {
        await unlockWithError(lock, error);
      } catch {
        // Already reported as a release failure or a loss (events$ and a warning).
      }
      throw error;
    }
    const open = runner;
    let committed = false;
    try {
      await releaseThrough(lock, async (outcome, error) => {
        const lease = this.releases.get(lock)!;
        const leaving = this.room.settled(lease.key);
        if (leaving) await leaving;
        const { result: released, afterCommit } = await this.dialect.releaseWithin!(open, {
          key: lease.key,
          token: lease.token,
          outcome,
          error: outcome === 'error' ? this.codec.encode(error) : null,
          handoffLeaseMs: HANDOFF_LEASE_MS,
          minHoldMs: lease.minHoldMs,
        });
        // Taken over: nothing of the work may commit (rolled back below).
        if (!released.released) return false;
        await open.commitTransaction();
        committed = true;
        afterCommit?.();
        this.afterRelease(lease.key, released, lock);
        return true;
      });
      // The section called `lock.unlock()` itself: released outside, its work commits alone.
      if (!committed) await open.commitTransaction();
    } catch (error) {
      if (!committed) await this.rollback(open);
      await open.release().catch(() => undefined);
      if (error instanceof LockLostError) throw error;
      // The release or the commit failed: rolled back, the lock is still ours.
      const failure = new LockDatabaseError(MESSAGES.databaseError('release', lock.name), error);
      try {
        await unlockWithError(lock, failure);
      } catch (released) {
        if (released instanceof LockLostError) throw released;
      }
      throw failure;
    }
    await open.release().catch(() => undefined);
    return result;
  }

  /** Rolls a section's transaction back (if it began) and gives its connection back. */
  private async rollback(runner: QueryRunner | undefined): Promise<void> {
    if (!runner) return;
    try {
      if (runner.isTransactionActive) await runner.rollbackTransaction();
    } catch {
      // The connection failed: the database rolls the transaction back.
    }
    if (!runner.isReleased) await runner.release().catch(() => undefined);
  }

  /** Whether `RLockModule.forRoot({ disabled: true })` turned locking off for decorated methods. */
  get disabled(): boolean {
    return this.options.disabled;
  }

  /** The module's `acquireTimeoutMs`: how long `lock()`, `withLock()` and `@WithRemoteLock` wait unless told. */
  get defaultAcquireTimeoutMs(): number {
    return this.options.acquireTimeoutMs;
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
   * Frees a lock whoever holds it (an operator's tool for a stuck lock). With `fence`, only
   * the holding granted with that fence (the one `inspect()` showed): if the lock was
   * released or changed hands since, nothing is released. The fence is bumped, the evicted
   * holder's renewals fail and its `signal` aborts; the next holder finds a
   * {@link ForceReleasedError} with `reason` in `lastError`. Resolves to false when nothing
   * was released (the lock was free, or held with another fence).
   * `forceRelease(name, reason)` is `forceRelease(name, { reason })`.
   */
  async forceRelease(name: string, options?: string | ForceReleaseOptions): Promise<boolean> {
    assertLockName(name);
    const isObject = typeof options === 'object' && options !== null && !Array.isArray(options);
    if (isObject) assertOptions(options, 'forceRelease options', ['reason', 'fence']);
    const { reason, fence } = isObject ? options : { reason: options, fence: undefined };
    if (reason !== undefined && (typeof reason !== 'string' || reason.length > 1000)) {
      throw new InvalidArgumentError('reason', MESSAGES.invalid.reason(describe(reason)));
    }
    if (fence !== undefined && !(Number.isSafeInteger(fence) && fence >= 0)) {
      throw new InvalidArgumentError('fence', MESSAGES.invalid.fence(describe(fence)));
    }
    const error = this.codec.encode(new ForceReleasedError(reason));
    const released = await this.database('force release', name, () =>
      this.dialect.forceRelease(lockKey(name), error, fence),
    );
    this.emitter.forceReleased(name, reason, released);
    return released;
  }

  /**
   * Deletes the rows of locks that were released (are free) and not used for `olderThan`
   * milliseconds (database clock), unless a process waits for them; never the row of a
   * holder whose lease ran out (its next holder must get the `LeaseExpiredError`). Also
   * deletes the places in line of processes that died. Resolves to how many lock rows were
   * deleted.
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
    // Callers of this process already wait for it, hold it or are asking for it: join them,
    // no attempt (a hundred callers at once make one attempt, not a hundred).
    // (A run of a period, `oncePer`, makes exactly one attempt.)
    const once = timeoutMs === 0 || call.oncePerMs !== null;
    const attempts =
      once || !(this.room.hasLine(key) || this.heldHere(key) || this.attempting.has(key));
    if (attempts) {
      this.attempting.set(key, (this.attempting.get(key) ?? 0) + 1);
      let result: RemoteLock | NotGranted;
      try {
        result = await this.bounded(
          this.attemptRaw(name, key, call, ownerToken(), null),
          name,
          call.signal,
          call.startedAt + timeoutMs + ATTEMPT_GRACE_MS,
        );
      } finally {
        const left = this.attempting.get(key)! - 1;
        if (left === 0) this.attempting.delete(key);
        else this.attempting.set(key, left);
      }
      if (result instanceof RemoteLock) return result;
      if (once) {
        this.emitter.timedOut(name, timeoutMs, call.startedAt);
        throw new AcquireTimeoutError(name, timeoutMs);
      }
      this.assertOpen(call.signal);
    }
    return this.room.wait({
      name,
      key,
      ttlMs: call.ttlMs,
      minHoldMs: call.minHoldMs,
      maxHoldMs: call.maxHoldMs,
      oncePerMs: null,
      timeoutMs,
      deadline: call.startedAt + timeoutMs,
      signal: call.signal,
      startedAt: call.startedAt,
      // Those who joined while its attempt was on its way came after it.
      first: attempts,
    });
  }

  /**
   * Settles with the attempt, or sooner: at once when `signal` aborts, and with a
   * {@link LockDatabaseError} when the database has not answered by `until` (no pooled
   * connection, a lock wait). A lock the attempt grants after that is passed on.
   */
  private bounded(
    attempt: Promise<RemoteLock | NotGranted>,
    name: string,
    signal: AbortSignal | undefined,
    until: number,
  ): Promise<RemoteLock | NotGranted> {
    const startedAt = performance.now();
    return new Promise((resolve, reject) => {
      let settled = false;
      const finish = (settle: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        settle();
      };
      const onAbort = () => finish(() => reject(signal!.reason));
      const timer = setTimeout(
        () =>
          finish(() =>
            reject(
              new LockDatabaseError(
                MESSAGES.databaseError('acquire', name),
                new Error(MESSAGES.noAnswer(Math.round(until - startedAt))),
              ),
            ),
          ),
        Math.max(0, until - performance.now()),
      );
      timer.unref();
      signal?.addEventListener('abort', onAbort, { once: true });
      attempt.then(
        (result) => {
          if (settled) {
            // Too late for the caller: do not leave the lock held.
            if (result instanceof RemoteLock) void passOnLock(result).catch(() => undefined);
            return;
          }
          finish(() => resolve(result));
        },
        (error: unknown) => finish(() => reject(error)),
      );
    });
  }

  private async attempt(name: string, key: string, call: CallOptions): Promise<RemoteLock | null> {
    const result = await this.attemptRaw(name, key, call, ownerToken(), null);
    return result instanceof RemoteLock ? result : null;
  }

  /** One attempt, as a newcomer (`place` null) or from a place in line (its token). */
  private async attemptRaw(
    name: string,
    key: string,
    call: Pick<
      CallOptions,
      'ttlMs' | 'signal' | 'startedAt' | 'minHoldMs' | 'maxHoldMs' | 'oncePerMs'
    >,
    token: string,
    place: Place | null,
  ): Promise<RemoteLock | NotGranted> {
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
        holdLimitMessage: MESSAGES.holdLimitExceeded,
        maxHoldMs: call.maxHoldMs,
        oncePerMs: call.oncePerMs,
        place,
      });
    } catch (error) {
      // The dialect's own typed errors (a self-deadlock) say more than a database failure.
      if (error instanceof RemoteLockError) throw error;
      throw new LockDatabaseError(MESSAGES.databaseError('acquire', name), error);
    }
    if (!result.acquired) return result;
    const lock = this.toLock(name, key, token, call, result, sentAt);
    if (place === null && (call.signal?.aborted || this.closing)) {
      // The caller gave up while the attempt was on its way: do not leave the lock held.
      await passOnLock(lock).catch(() => undefined);
      this.assertOpen(call.signal);
    }
    return lock;
  }

  /** The handle of a grant: made by this process's attempt, or by a release that handed it over. */
  private toLock(
    name: string,
    key: string,
    token: string,
    call: Pick<CallOptions, 'ttlMs' | 'startedAt' | 'minHoldMs'>,
    grant: Granted,
    sentAt: number,
  ): RemoteLock {
    const lock: RemoteLock = new RemoteLock({
      name,
      fence: grant.fence,
      lastError: this.lastError(grant.lastOutcome, grant.lastError),
      expiresAtUs: grant.expiresAtUs,
      sentAt,
      grantedMs: grant.nowUs === undefined ? undefined : (grant.expiresAtUs - grant.nowUs) / 1000,
      holdLimitMs:
        grant.holdLimitUs === null ? undefined : (grant.holdLimitUs - grant.acquiredAtUs) / 1000,
      lease: {
        key,
        token,
        ttlMs: call.ttlMs,
        renew: (ttlMs) =>
          this.database('renewal', name, () =>
            // A bound of its own, well inside the lease: a renewal that gets no answer fails,
            // and the lock tries again while the lease lasts (never waits for one answer).
            withinMs(this.dialect.extend(key, token, ttlMs), ttlMs / 3),
          ),
        release: (outcome, error) => this.release(key, token, outcome, error, call.minHoldMs, lock),
        events: this.emitter,
        grantedAt: performance.now(),
        settled: (settledLock) => {
          this.held.delete(settledLock);
          const locks = this.heldByKey.get(key);
          locks?.delete(settledLock);
          if (locks?.size === 0) this.heldByKey.delete(key);
          if (this.held.size === 0) this.drained?.();
        },
      },
    });
    this.held.add(lock);
    this.releases.set(lock, { key, token, minHoldMs: call.minHoldMs });
    let locks = this.heldByKey.get(key);
    if (!locks) this.heldByKey.set(key, (locks = new Set()));
    locks.add(lock);
    this.emitter.acquired(lock, grant.lastOutcome, call.startedAt, grant.holdLimitUs);
    return lock;
  }

  /** Whether this process holds the lock of `key` (and is not releasing it). */
  private heldHere(key: string): boolean {
    const locks = this.heldByKey.get(key);
    if (!locks) return false;
    for (const lock of locks) if (lock.isHeld) return true;
    return false;
  }

  /** Releases (handing the lock to the next place in line); the driver's error as a rejection. */
  private async release(
    key: string,
    token: string,
    outcome: ReleaseOutcome,
    error: unknown,
    minHoldMs: number | null,
    lock?: RemoteLock,
  ): Promise<boolean> {
    // A place of this process being given up: let it go first, rather than hand it the lock.
    const leaving = this.room.settled(key);
    if (leaving) await leaving;
    const result = await this.dialect.release({
      key,
      token,
      outcome,
      error: outcome === 'error' ? this.codec.encode(error) : null,
      handoffLeaseMs: HANDOFF_LEASE_MS,
      minHoldMs,
    });
    this.afterRelease(key, result, lock);
    return result.released;
  }

  /** After a release committed: its minimum hold's event, and the next holder rung. */
  private afterRelease(key: string, result: ReleaseResult, lock?: RemoteLock): void {
    if (lock && result.holdUntilUs !== undefined) this.emitter.heldUntil(lock, result.holdUntilUs);
    if (result.handedTo === this.owner) this.room.handedHere(key);
    else if (result.ring) this.room.ring(result.ring.doorbell, result.ring.token);
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
    if (outcome === 'overran') return new HoldLimitExceededError();
    return outcome === 'expired' ? new LeaseExpiredError() : new ForceReleasedError();
  }

  private toState(row: StoredLock): LockState {
    // Released with a minimum hold left: still taken.
    const minHeld = row.token === null && (row.holdUntilUs ?? 0) > row.nowUs;
    const status = minHeld
      ? 'held'
      : row.token === null
        ? 'free'
        : (row.expiresAtUs ?? 0) > row.nowUs
          ? 'held'
          : 'expired';
    const date = (us: number | null) => (us === null ? null : new Date(us / 1000));
    const state: LockState = {
      name: row.name,
      status,
      holder: row.holder,
      fence: row.fence,
      acquiredAt: date(row.acquiredAtUs),
      expiresAt: status === 'free' ? null : date(minHeld ? row.holdUntilUs : row.expiresAtUs),
      releasedAt: date(row.releasedAtUs),
      lastOutcome: row.lastOutcome,
      lastError: this.lastError(row.lastOutcome, row.lastError),
      holdUntil: minHeld ? date(row.holdUntilUs) : null,
      holdLimit: date(row.holdLimitUs),
      lastTickAt: date(row.lastTickAtUs),
    };
    const overran =
      row.holdLimitUs !== null && row.expiresAtUs !== null && row.expiresAtUs >= row.holdLimitUs;
    if (status === 'expired' && overran) {
      state.lastOutcome = 'overran';
      state.lastError = new HoldLimitExceededError(row.name, {
        holder: row.holder,
        fence: row.fence,
        limitAt: Math.floor(row.holdLimitUs! / 1000),
      });
    } else if (status === 'expired') {
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
        minHoldMs: null,
        maxHoldMs: null,
        oncePerMs: null,
        transaction: null,
      };
    }
    assertOptions(options, 'options', known);
    const o = (options ?? {}) as LockOptions;
    if (o.ttlMs !== undefined) assertDuration(o.ttlMs, 'ttlMs', RLOCK_LIMITS.minTtlMs);
    assertOptionalBoolean(o.reentrant, 'reentrant');
    assertOptionalSignal(o.signal, 'signal');
    if (o.minHoldMs !== undefined) assertDuration(o.minHoldMs, 'minHoldMs', 0);
    if (o.maxHoldMs !== undefined) assertDuration(o.maxHoldMs, 'maxHoldMs', RLOCK_LIMITS.minTtlMs);
    const w = o as WithLockOptions;
    assertOptionalBoolean(w.transactional, 'transactional');
    assertOptionalIsolationLevel(w.isolationLevel, 'isolationLevel');
    return {
      ttlMs: o.ttlMs ?? this.options.ttlMs,
      reentrant: o.reentrant ?? false,
      signal: o.signal,
      startedAt: performance.now(),
      minHoldMs: o.minHoldMs ?? null,
      maxHoldMs: o.maxHoldMs ?? null,
      oncePerMs: o.oncePer === undefined ? null : parsePeriod(o.oncePer),
      transaction: w.transactional
        ? w.isolationLevel === undefined
          ? {}
          : { isolationLevel: w.isolationLevel }
        : null,
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

/** Rejects when `promise` has not settled within `ms` (the promise itself runs on). */
function withinMs<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(MESSAGES.noAnswer(Math.round(ms)))), ms);
    timer.unref();
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}
