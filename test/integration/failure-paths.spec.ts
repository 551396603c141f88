import { Logger } from '@nestjs/common';
import {
  LeaseExpiredError,
  LockDatabaseError,
  LockLostError,
  ShuttingDownError,
  type RemoteLock,
} from '../../lib';
import type { LockDialect } from '../../lib/dialects/dialect.interface';
import { RLOCK_DIALECT } from '../../lib/rlock.constants';
import { createTestApp, type TestApp } from '../support/app';
import { testDatabases, uniqueTableName } from '../support/databases';

/**
 * Issue 13: releases, renewals, re-entry and shutdown when something fails, against each
 * real database. Faults are injected by wrapping the dialect's methods: a statement held
 * in flight, a connection cut (the statement throws), a reply held back.
 */

class RecoverableError extends Error {
  override name = 'RecoverableError';
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
}

function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

type Run = () => Promise<unknown>;

/** Counts the calls of one dialect method and lets the test decide what each does. */
interface Intercepted {
  calls: number;
  /** What call `n` (from 1) does; `run` sends the real statement. Default: sends it. */
  behaviour: (run: Run, n: number) => Promise<unknown>;
}

const connectionCut = () => new Error('Connection terminated unexpectedly (injected)');

/** Resolves when `promise` does; fails with `message` if that takes longer than `ms`. */
async function within<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${message} within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function waitFor(check: () => Promise<boolean>, message: string, ms = 10_000) {
  const deadline = performance.now() + ms;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`${message} within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

function aborted(lock: RemoteLock): Promise<unknown> {
  return new Promise((resolve) => {
    if (lock.signal.aborted) resolve(lock.signal.reason);
    else lock.signal.addEventListener('abort', () => resolve(lock.signal.reason));
  });
}

describe.each(testDatabases())('failure paths on $label', (db) => {
  const tableName = uniqueTableName('rlock_fail');
  let a: TestApp;
  let b: TestApp;
  let dialect: LockDialect;
  const restores: (() => void)[] = [];
  let n = 0;
  const fresh = () => `failure-${++n}`;

  /** Wraps `dialect[method]` of app a until the end of the test. */
  function intercept(method: 'extend' | 'release'): Intercepted {
    const target = dialect as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
    const real = target[method].bind(dialect);
    const control: Intercepted = { calls: 0, behaviour: (run) => run() };
    target[method] = (...args: unknown[]) => {
      control.calls += 1;
      return control.behaviour(() => real(...args), control.calls);
    };
    restores.push(() => delete target[method]);
    return control;
  }

  beforeAll(async () => {
    const options = { tableName, errors: [RecoverableError] };
    a = await createTestApp(db, { ...options, holder: 'app-a' });
    b = await createTestApp(db, { ...options, holder: 'app-b' });
    dialect = a.module.get<LockDialect>(RLOCK_DIALECT);
  });
  afterEach(() => {
    for (const restore of restores.splice(0)) restore();
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
  });

  describe('a failed release (item 1)', () => {
    it('never renews again when a renewal was in flight as it failed, and goes through when tried again', async () => {
      const name = fresh();
      const lock = await a.service.lock(name, 1000, { ttlMs: 6000 });
      const extend = intercept('extend');
      const renewalSent = deferred();
      const renewalMayRun = deferred();
      let renewed: unknown;
      extend.behaviour = async (run, call) => {
        if (call > 1) return run();
        renewalSent.resolve();
        await renewalMayRun.promise;
        return (renewed = await run());
      };
      const release = intercept('release');
      release.behaviour = (run, call) => (call === 1 ? Promise.reject(connectionCut()) : run());
      // The background renewal (a third of the lease on) is held in flight …
      await within(renewalSent.promise, 10_000, 'no renewal was sent');
      // … while the release fails on a cut connection.
      const error = await lock.unlock(new RecoverableError('half built')).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(LockDatabaseError);
      expect(lock.isHeld).toBe(true);
      renewalMayRun.resolve(); // the renewal then runs, and succeeds
      await waitFor(async () => renewed !== undefined, 'the renewal did not answer');
      expect(renewed).not.toBeNull();
      // The release is tried again and goes through, with the outcome it was given.
      await waitFor(
        async () => (await b.service.inspect(name))?.status === 'free',
        'the failed release was not tried again',
      );
      const state = await b.service.inspect(name);
      expect(state).toMatchObject({ lastOutcome: 'error', fence: lock.fence });
      expect(state?.lastError).toBeInstanceOf(RecoverableError);
      expect(state?.lastError?.message).toBe('half built');
      expect(release.calls).toBeGreaterThanOrEqual(2);
      expect(extend.calls).toBe(1); // never renewed after the release failed
      expect(lock.isHeld).toBe(false);
      expect(lock.signal.aborted).toBe(false);
    });

    it('keeps its deadline when every retry fails: the signal aborts, and the lease runs out unrenewed', async () => {
      const name = fresh();
      const lock = await a.service.lock(name, 1000, { ttlMs: 1500 });
      const lost = aborted(lock);
      const extend = intercept('extend');
      const renewalSent = deferred();
      const renewalMayRun = deferred();
      extend.behaviour = async (run, call) => {
        if (call === 1) {
          renewalSent.resolve();
          await renewalMayRun.promise;
        }
        return run();
      };
      const release = intercept('release');
      release.behaviour = () => Promise.reject(connectionCut());
      await within(renewalSent.promise, 10_000, 'no renewal was sent');
      await expect(lock.unlock()).rejects.toBeInstanceOf(LockDatabaseError);
      renewalMayRun.resolve();
      const reason = await within(lost, 10_000, 'the signal did not abort');
      expect(reason).toBeInstanceOf(LockLostError);
      expect(lock.isHeld).toBe(false);
      expect(extend.calls).toBe(1);
      expect(release.calls).toBeGreaterThanOrEqual(2); // tried again while the lease lasted
      const callsAtLoss = release.calls;
      // Nobody renews it: the next holder takes over the expired lease.
      const next = await b.service.lock(name, 10_000);
      expect(next.lastError).toBeInstanceOf(LeaseExpiredError);
      expect(next.fence).toBe(lock.fence + 1);
      await next.unlock();
      expect(release.calls).toBe(callsAtLoss);
    });
  });

  describe('unlock(error) after a local loss (item 2)', () => {
    /** Takes a lock whose renewals fail until its local deadline has passed (the row stays). */
    async function lostLocally(name: string): Promise<RemoteLock> {
      const lock = await a.service.lock(name, 1000, { ttlMs: 600 });
      const lost = aborted(lock);
      const extend = intercept('extend');
      extend.behaviour = () => Promise.reject(connectionCut());
      await within(lost, 10_000, 'the lock was not lost');
      restores.pop()!(); // the database answers again
      return lock;
    }

    it('still records the error when the row is still this holder’s', async () => {
      const name = fresh();
      const lock = await lostLocally(name);
      await lock.unlock(new RecoverableError('half built'));
      const state = await b.service.inspect(name);
      expect(state).toMatchObject({ status: 'free', lastOutcome: 'error', fence: lock.fence });
      expect(state?.lastError).toBeInstanceOf(RecoverableError);
      expect(state?.lastError?.message).toBe('half built');
      const next = await b.service.lock(name, 1000);
      expect(next.lastError).toBeInstanceOf(RecoverableError);
      await next.unlock();
    });

    it('says the error was lost when someone else holds the lock now', async () => {
      const name = fresh();
      const lock = await lostLocally(name);
      const thief = await b.service.lock(name, 10_000);
      expect(thief.lastError).toBeInstanceOf(LeaseExpiredError);
      const error = await lock.unlock(new RecoverableError('half built')).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(LockLostError);
      expect((error as Error).message).toContain('was not recorded');
      expect(await b.service.inspect(name)).toMatchObject({
        status: 'held',
        holder: 'app-b',
        fence: thief.fence,
      });
      await thief.unlock();
    });
  });

  describe('extend() racing a background renewal (item 3)', () => {
    it('never leaves the local expiry later than the database’s', async () => {
      const name = fresh();
      const lock = await a.service.lock(name, 1000, { ttlMs: 6000 });
      const extend = intercept('extend');
      const renewalRan = deferred();
      const replyMayCome = deferred();
      const renewalAnswered = deferred();
      const extensionAnswered = deferred();
      extend.behaviour = async (run, call) => {
        const result = await run();
        if (call === 1) {
          // The background renewal (6 s) ran in the database; its reply is held back.
          renewalRan.resolve();
          await replyMayCome.promise;
          setImmediate(() => renewalAnswered.resolve());
        } else if (call === 2) {
          setImmediate(() => extensionAnswered.resolve());
        }
        return result;
      };
      await within(renewalRan.promise, 10_000, 'no renewal was sent');
      // extend(2 s) runs after it (the expiry it sets is the database's) and answers first.
      const extending = lock.extend(2000);
      await extensionAnswered.promise;
      replyMayCome.resolve();
      await renewalAnswered.promise;
      await extending;
      const state = await b.service.inspect(name);
      expect(lock.expiresAt.getTime()).toBeLessThanOrEqual(state!.expiresAt!.getTime());
      await lock.unlock();
    });
  });

  describe('withLock re-entered (item 14)', () => {
    it('gives fn a handle of its own, whose unlock() leaves the enclosing lock held', async () => {
      const name = fresh();
      await a.service.withLock(name, 5000, async (outer) => {
        const fence = await a.service.withLock(name, { reentrant: true }, async (inner) => {
          expect(inner).not.toBe(outer);
          expect(a.service.current()).toBe(inner);
          await inner.unlock();
          expect(inner.isHeld).toBe(false);
          return inner.fence;
        });
        expect(fence).toBe(outer.fence);
        expect(outer.isHeld).toBe(true);
        expect(a.service.current()).toBe(outer);
        expect((await b.service.inspect(name))?.status).toBe('held');
      });
      expect((await b.service.inspect(name))?.status).toBe('free');
    });
  });

  describe('shutdown (item 4)', () => {
    /** Starts app c's shutdown; resolves once it has begun (a waiter of c was turned away). */
    async function beginShutdown(
      c: TestApp,
    ): Promise<{ closing: Promise<void>; closed(): boolean }> {
      const busy = fresh();
      const held = await b.service.lock(busy, 1000);
      const waiter = c.service.lock(busy, 60_000).catch((e: unknown) => e);
      let done = false;
      const closing = c.close().then(() => {
        done = true;
      });
      expect(await within(waiter, 10_000, 'the waiter was not turned away')).toBeInstanceOf(
        ShuttingDownError,
      );
      await held.unlock();
      return { closing, closed: () => done };
    }

    it('keeps held locks renewed while their sections finish, and releases them with their real outcome', async () => {
      const c = await createTestApp(db, {
        tableName,
        holder: 'app-c',
        errors: [RecoverableError],
        shutdownGraceMs: 60_000,
      });
      const name = fresh();
      const entered = deferred<RemoteLock>();
      const finish = deferred();
      const section = c.service
        .withLock(name, { ttlMs: 1500 }, async (lock) => {
          entered.resolve(lock);
          await finish.promise;
          throw new RecoverableError('failed while shutting down');
        })
        .catch((e: unknown) => e);
      const lock = await entered.promise;
      const shutdown = await beginShutdown(c);
      // New acquisitions fail at once.
      await expect(c.service.lock(fresh(), 1000)).rejects.toBeInstanceOf(ShuttingDownError);
      await expect(c.service.tryLock(fresh())).rejects.toBeInstanceOf(ShuttingDownError);
      await expect(c.service.withLock(fresh(), 1000, () => 1)).rejects.toBeInstanceOf(
        ShuttingDownError,
      );
      // The lock keeps being renewed past the lease it had, while its section runs.
      const before = (await b.service.inspect(name))!.expiresAt!.getTime();
      await waitFor(
        async () => (await b.service.inspect(name))!.expiresAt!.getTime() > before + 1500,
        'the held lock was not renewed during the shutdown',
      );
      expect(lock.isHeld).toBe(true);
      expect(lock.signal.aborted).toBe(false);
      expect(shutdown.closed()).toBe(false);
      finish.resolve();
      expect(await within(section, 10_000, 'the section did not end')).toBeInstanceOf(
        RecoverableError,
      );
      await within(shutdown.closing, 10_000, 'the application did not close');
      const state = await b.service.inspect(name);
      expect(state).toMatchObject({ status: 'free', lastOutcome: 'error', holder: 'app-c' });
      expect(state?.lastError).toBeInstanceOf(RecoverableError);
      expect(state?.lastError?.message).toBe('failed while shutting down');
    });

    it('aborts the sections still running at the end of the grace, names them in the log and leaves their locks to expire', async () => {
      const warn = jest.spyOn(Logger.prototype, 'warn');
      const c = await createTestApp(db, { tableName, holder: 'app-c', shutdownGraceMs: 300 });
      const name = fresh();
      const entered = deferred<RemoteLock>();
      const finish = deferred();
      const section = c.service
        .withLock(name, { ttlMs: 1000 }, async (lock) => {
          entered.resolve(lock);
          await finish.promise; // ignores the signal
        })
        .catch((e: unknown) => e);
      const lock = await entered.promise;
      const shutdown = await beginShutdown(c);
      await within(shutdown.closing, 10_000, 'the application did not close');
      expect(lock.signal.aborted).toBe(true);
      expect(lock.signal.reason).toBeInstanceOf(LockLostError);
      expect(lock.isHeld).toBe(false);
      expect(warn).toHaveBeenCalledWith(expect.stringContaining(`"${name}"`));
      warn.mockRestore();
      // Not released under running work: held by c until its lease runs out.
      expect(await b.service.inspect(name)).toMatchObject({ holder: 'app-c', fence: lock.fence });
      expect((await b.service.inspect(name))?.lastOutcome).not.toBe('released');
      finish.resolve();
      expect(await section).toBeInstanceOf(LockLostError); // the connections are closed now
      const next = await b.service.lock(name, 10_000);
      expect(next.lastError).toBeInstanceOf(LeaseExpiredError);
      await next.unlock();
    });
  });
});
