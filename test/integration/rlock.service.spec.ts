import { DataSource } from 'typeorm';
import {
  AcquireTimeoutError,
  createRLockMigration,
  ForceReleasedError,
  InvalidArgumentError,
  LeaseExpiredError,
  LockLostError,
  LockReentryError,
  RemoteError,
  ShuttingDownError,
  type RemoteLock,
} from '../../lib';
import { createTestApp, type TestApp } from '../support/app';
import { spawnSupport, waitForLine } from '../support/child-process';
import { testDatabases, uniqueTableName } from '../support/databases';

class RecoverableError extends Error {
  constructor(
    message: string,
    readonly retryAfterMs: number,
  ) {
    super(message);
    this.name = 'RecoverableError';
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(testDatabases())('RLockService on $label', (db) => {
  const tableName = uniqueTableName();
  let a: TestApp;
  let b: TestApp;
  let n = 0;
  const fresh = () => `lock-${++n}`;

  beforeAll(async () => {
    a = await createTestApp(db, { tableName, errors: [RecoverableError], holder: 'app-a' });
    b = await createTestApp(db, { tableName, errors: [RecoverableError], holder: 'app-b' });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
  });

  describe('lock / unlock', () => {
    it('grants a free lock and refuses it to others until released', async () => {
      const name = fresh();
      const lock = await a.service.lock(name, 1000);
      expect(lock.name).toBe(name);
      expect(lock.isHeld).toBe(true);
      expect(lock.lastError).toBeNull();
      expect(lock.expiresAt.getTime()).toBeGreaterThan(Date.now() - 60_000);
      expect(await b.service.tryLock(name)).toBeNull();
      expect(await a.service.tryLock(name)).toBeNull();
      await lock.unlock();
      expect(lock.isHeld).toBe(false);
      const next = await b.service.tryLock(name);
      expect(next).not.toBeNull();
      await next!.unlock();
    });

    it('treats a second unlock as a no-op', async () => {
      const lock = await a.service.lock(fresh(), 1000);
      await lock.unlock();
      await expect(lock.unlock()).resolves.toBeUndefined();
      await expect(lock.unlock(new Error('late'))).resolves.toBeUndefined();
    });

    it('hands fences out in strictly increasing order', async () => {
      const name = fresh();
      const fences: number[] = [];
      for (let i = 0; i < 10; i++) {
        const lock = await (i % 2 ? a : b).service.lock(name, 1000);
        fences.push(lock.fence);
        await lock.unlock();
      }
      for (let i = 1; i < fences.length; i++) expect(fences[i]).toBeGreaterThan(fences[i - 1]);
      expect(Number.isSafeInteger(fences[0])).toBe(true);
    });

    it('lets two plain calls in one process take turns (contenders, not re-entry)', async () => {
      const name = fresh();
      const first = await a.service.lock(name, 1000);
      const second = a.service.lock(name, 5000);
      await sleep(100);
      await first.unlock();
      const got = await second;
      expect(got.fence).toBeGreaterThan(first.fence);
      await got.unlock();
    });
  });

  describe('acquire timeout', () => {
    it('rejects with AcquireTimeoutError after the acquire timeout, not before', async () => {
      const name = fresh();
      const holder = await a.service.lock(name, 1000);
      const started = performance.now();
      const error = await b.service.lock(name, 300).catch((e: unknown) => e);
      const waited = performance.now() - started;
      expect(error).toBeInstanceOf(AcquireTimeoutError);
      expect((error as AcquireTimeoutError).lockName).toBe(name);
      expect(waited).toBeGreaterThanOrEqual(299);
      expect(waited).toBeLessThan(3000);
      await holder.unlock();
    });

    it('makes exactly one attempt with a timeout of 0', async () => {
      const name = fresh();
      const holder = await a.service.lock(name, 0);
      const started = performance.now();
      await expect(b.service.lock(name, 0)).rejects.toBeInstanceOf(AcquireTimeoutError);
      expect(performance.now() - started).toBeLessThan(1000);
      await holder.unlock();
      const again = await b.service.lock(name, 0);
      await again.unlock();
    });

    it('gets the lock as soon as it is released while waiting', async () => {
      const name = fresh();
      const holder = await a.service.lock(name, 1000);
      const waiting = b.service.lock(name, 10_000);
      await sleep(200);
      await holder.unlock(new Error('handed over'));
      const got = await waiting;
      expect(got.lastError?.message).toBe('handed over');
      await got.unlock();
    });

    it('stops waiting when the caller aborts', async () => {
      const name = fresh();
      const holder = await a.service.lock(name, 1000);
      const controller = new AbortController();
      const waiting = b.service.lock(name, 10_000, { signal: controller.signal });
      setTimeout(() => controller.abort(new Error('client went away')), 100);
      await expect(waiting).rejects.toThrow('client went away');
      await holder.unlock();
      // The waiter's place is given up as it leaves; a release that came first hands the
      // lock to it, and its process passes it on at once, the stored outcome unchanged.
      const deadline = Date.now() + 5_000;
      let state = await b.service.inspect(name);
      while (state?.status !== 'free' && Date.now() < deadline) {
        await sleep(20);
        state = await b.service.inspect(name);
      }
      expect(state).toMatchObject({ status: 'free', lastOutcome: 'released', lastError: null });
    });
  });

  describe('outcome passing', () => {
    it('gives the next holder null after a clean release', async () => {
      const name = fresh();
      await (await a.service.lock(name, 1000)).unlock(new Error('first'));
      await (await a.service.lock(name, 1000)).unlock();
      const third = await b.service.lock(name, 1000);
      expect(third.lastError).toBeNull();
      await third.unlock(null);
    });

    it('rebuilds a registered error class in another app', async () => {
      const name = fresh();
      await (await a.service.lock(name, 1000)).unlock(new RecoverableError('try later', 250));
      const next = await b.service.lock(name, 1000);
      expect(next.lastError).toBeInstanceOf(RecoverableError);
      expect(next.lastError).toMatchObject({ message: 'try later', retryAfterMs: 250 });
      await next.unlock();
    });

    it('keeps unknown classes as RemoteError with their name', async () => {
      const name = fresh();
      class SecretError extends Error {
        override name = 'SecretError';
      }
      await (await a.service.lock(name, 1000)).unlock(new SecretError('hidden'));
      const next = await b.service.lock(name, 1000);
      expect(next.lastError).toBeInstanceOf(RemoteError);
      expect(next.lastError).toMatchObject({ name: 'SecretError', message: 'hidden' });
      await next.unlock();
    });

    it('records non-Error throws from withLock, including undefined', async () => {
      const name = fresh();
      await expect(
        a.service.withLock(name, 1000, () => {
          throw undefined;
        }),
      ).rejects.toBeUndefined();
      let next = await b.service.lock(name, 1000);
      expect(next.lastError).toBeInstanceOf(Error);
      expect(next.lastError!.message).toMatch(/non-Error value was thrown \(undefined\)/);
      await next.unlock();
      await expect(
        a.service.withLock(name, 1000, () => Promise.reject('just a string')),
      ).rejects.toBe('just a string');
      next = await b.service.lock(name, 1000);
      expect(next.lastError!.message).toBe('just a string');
      await next.unlock();
    });

    it('withLock rethrows the very same error object and returns values', async () => {
      const name = fresh();
      const error = new RecoverableError('same', 1);
      await expect(a.service.withLock(name, {}, () => Promise.reject(error))).rejects.toBe(error);
      await expect(
        a.service.withLock(name, undefined, (lock) => lock.lastError),
      ).resolves.toBeInstanceOf(RecoverableError);
      expect((await a.service.inspect(name))?.lastOutcome).toBe('released');
    });

    it('tells the next holder LeaseExpiredError after a holder process is killed', async () => {
      const name = fresh();
      const child = spawnSupport('hold-lock.js', {
        kind: db.kind,
        url: db.url,
        name,
        ttlMs: 1000,
        rlock: { tableName, holder: 'doomed-child' },
      });
      const line = await waitForLine(child, /^HELD \d+/);
      const fence = Number(line.split(' ')[1]);
      child.kill('SIGKILL');
      const started = performance.now();
      const next = await a.service.lock(name, 10_000);
      const tookOver = performance.now() - started;
      expect(next.lastError).toBeInstanceOf(LeaseExpiredError);
      expect(next.lastError).toMatchObject({ holder: 'doomed-child', fence });
      expect(next.fence).toBe(fence + 1);
      expect(tookOver).toBeLessThan(5000);
      expect((await a.service.inspect(name))?.lastOutcome).toBe('expired');
      await next.unlock();
      const after = await b.service.lock(name, 1000);
      expect(after.lastError).toBeNull();
      await after.unlock();
    });
  });

  describe('lease', () => {
    it('renews the lease of a long holder in the background', async () => {
      const name = fresh();
      const lock = await a.service.lock(name, 1000, { ttlMs: 300 });
      const firstExpiry = lock.expiresAt.getTime();
      for (let i = 0; i < 6; i++) {
        await sleep(200);
        expect(await b.service.tryLock(name)).toBeNull();
      }
      expect(lock.expiresAt.getTime()).toBeGreaterThan(firstExpiry);
      expect(lock.signal.aborted).toBe(false);
      await lock.unlock();
    });

    it('extends the lease on demand', async () => {
      const lock = await a.service.lock(fresh(), 1000, { ttlMs: 1000 });
      const before = lock.expiresAt.getTime();
      await sleep(20);
      await lock.extend(60_000);
      expect(lock.expiresAt.getTime()).toBeGreaterThan(before + 50_000);
      await lock.unlock();
      await expect(lock.extend()).rejects.toBeInstanceOf(LockLostError);
    });

    it('aborts signal with LockLostError when the lock is taken away, and unlock/extend say so', async () => {
      const name = fresh();
      const lock = await a.service.lock(name, 1000, { ttlMs: 300 });
      const aborted = new Promise<unknown>((resolve) =>
        lock.signal.addEventListener('abort', () => resolve(lock.signal.reason)),
      );
      expect(await b.service.forceRelease(name, 'stuck for too long')).toBe(true);
      const thief = await b.service.lock(name, 1000);
      expect(await aborted).toBeInstanceOf(LockLostError);
      expect(lock.isHeld).toBe(false);
      await expect(lock.unlock()).rejects.toBeInstanceOf(LockLostError);
      await expect(lock.extend()).rejects.toBeInstanceOf(LockLostError);
      const state = await a.service.inspect(name);
      expect(state).toMatchObject({ status: 'held', holder: 'app-b', fence: thief.fence });
      await thief.unlock();
    });

    it("never lets a stale handle release or extend the new holder's lock", async () => {
      const name = fresh();
      const stale = await a.service.lock(name, 1000, { ttlMs: 5000 });
      await b.service.forceRelease(name);
      const current = await b.service.lock(name, 1000);
      await expect(stale.extend()).rejects.toBeInstanceOf(LockLostError);
      await expect(stale.unlock(new Error('stale'))).rejects.toBeInstanceOf(LockLostError);
      const state = await b.service.inspect(name);
      expect(state).toMatchObject({ status: 'held', holder: 'app-b', fence: current.fence });
      expect(state?.lastError).toBeInstanceOf(ForceReleasedError);
      await current.unlock();
    });
  });

  describe('forceRelease, inspect, list, purge', () => {
    it('force-releases a held lock, bumps the fence and tells the next holder why', async () => {
      const name = fresh();
      const lock = await a.service.lock(name, 1000);
      expect(await b.service.forceRelease(name, 'operator: deploy stuck')).toBe(true);
      expect(await b.service.forceRelease(name)).toBe(false);
      const next = await b.service.lock(name, 1000);
      expect(next.fence).toBe(lock.fence + 2);
      expect(next.lastError).toBeInstanceOf(ForceReleasedError);
      expect(next.lastError!.message).toBe('operator: deploy stuck');
      await next.unlock();
    });

    it('inspects held and free locks, and returns null for unknown names', async () => {
      const name = fresh();
      expect(await a.service.inspect(name)).toBeNull();
      const lock = await a.service.lock(name, 1000, { ttlMs: 10_000 });
      const held = await b.service.inspect(name);
      expect(held).toMatchObject({ name, status: 'held', holder: 'app-a', fence: lock.fence });
      expect(Math.abs(held!.expiresAt!.getTime() - lock.expiresAt.getTime())).toBeLessThan(2000);
      await lock.unlock(new RecoverableError('x', 5));
      const free = await b.service.inspect(name);
      expect(free).toMatchObject({ status: 'free', expiresAt: null, lastOutcome: 'error' });
      expect(free!.lastError).toBeInstanceOf(RecoverableError);
      expect(free!.releasedAt).toBeInstanceOf(Date);
    });

    it('lists every lock ordered by name', async () => {
      const names = [fresh(), fresh()];
      for (const name of names) await (await a.service.lock(name, 1000)).unlock();
      const listed = (await b.service.list()).map((s) => s.name);
      expect(listed).toEqual(expect.arrayContaining(names));
      expect(listed.indexOf(names[0])).toBeLessThan(listed.indexOf(names[1]));
    });

    it('purges unused free locks only, and a recreated row never goes back in fence', async () => {
      const name = fresh();
      const busy = fresh();
      const old = await a.service.lock(name, 1000);
      await old.unlock();
      const held = await a.service.lock(busy, 1000);
      await sleep(10);
      const purged = await a.service.purge({ olderThan: 0 });
      expect(purged).toBeGreaterThanOrEqual(1);
      expect(await a.service.inspect(name)).toBeNull();
      expect((await a.service.inspect(busy))?.status).toBe('held');
      const again = await a.service.lock(name, 1000);
      expect(again.fence).toBeGreaterThan(old.fence);
      await again.unlock();
      await held.unlock();
    });
  });

  describe('re-entry', () => {
    it('fails at once with LockReentryError inside a locked section', async () => {
      const name = fresh();
      await a.service.withLock(name, 5000, async () => {
        const started = performance.now();
        await expect(a.service.lock(name, 5000)).rejects.toBeInstanceOf(LockReentryError);
        await expect(a.service.tryLock(name)).rejects.toBeInstanceOf(LockReentryError);
        await expect(a.service.withLock(name, 5000, () => 1)).rejects.toBeInstanceOf(
          LockReentryError,
        );
        expect(performance.now() - started).toBeLessThan(1000);
      });
    });

    it('reuses the enclosing lock with reentrant: true', async () => {
      const name = fresh();
      await a.service.withLock(name, 5000, async (outer) => {
        expect(a.service.current()).toBe(outer);
        const inner = await a.service.lock(name, 5000, { reentrant: true });
        expect(inner.fence).toBe(outer.fence);
        await inner.unlock();
        expect(outer.isHeld).toBe(true);
        expect(await a.service.withLock(name, { reentrant: true }, (l) => l.fence)).toBe(
          outer.fence,
        );
        expect(outer.isHeld).toBe(true);
      });
      expect(a.service.current()).toBeNull();
      expect((await a.service.inspect(name))?.status).toBe('free');
    });

    it('allows other names inside a locked section', async () => {
      await a.service.withLock(fresh(), 1000, async () => {
        await a.service.withLock(fresh(), 1000, async (inner) => {
          expect(a.service.current()).toBe(inner);
        });
      });
    });
  });

  describe('names', () => {
    it('tells apart names that differ only in case, accents, normalization or trailing spaces', async () => {
      const names = [
        'Straße',
        'STRASSE',
        'strasse',
        'café',
        'cafe\u0301',
        'cafe',
        'x',
        'x ',
        'X',
        '💥 lock',
      ];
      const locks: RemoteLock[] = [];
      for (const name of names) {
        const lock = await a.service.tryLock(name);
        expect(lock).not.toBeNull();
        locks.push(lock!);
      }
      for (const name of names) expect((await b.service.inspect(name))?.name).toBe(name);
      for (const lock of locks) await lock.unlock();
    });

    it('stores SQL-looking names and errors as plain data', async () => {
      const name = `x'); DROP TABLE ${tableName}; --`;
      const lock = await a.service.lock(name, 1000);
      await lock.unlock(new Error(`'); DELETE FROM ${tableName}; --`));
      const state = await b.service.inspect(name);
      expect(state?.name).toBe(name);
      expect(state?.lastError?.message).toBe(`'); DELETE FROM ${tableName}; --`);
      expect((await b.service.list()).length).toBeGreaterThan(1);
    });
  });

  describe('bad arguments', () => {
    const bad: Array<[string, (app: TestApp) => Promise<unknown>]> = [
      ['empty name', (app) => app.service.lock('', 10)],
      ['long name', (app) => app.service.lock('n'.repeat(256), 10)],
      ['non-string name', (app) => app.service.lock(42 as never, 10)],
      ['negative timeout', (app) => app.service.lock('ok-name', -1)],
      ['NaN timeout', (app) => app.service.lock('ok-name', NaN)],
      ['Infinity timeout', (app) => app.service.lock('ok-name', Infinity)],
      ['fractional ttl', (app) => app.service.lock('ok-name', 10, { ttlMs: 1.5 })],
      ['tiny ttl', (app) => app.service.tryLock('ok-name', { ttlMs: 1 })],
      ['unknown option', (app) => app.service.tryLock('ok-name', { ttl: 5 } as never)],
      ['string options', (app) => app.service.withLock('ok-name', 'x' as never, () => 1)],
      ['missing fn', (app) => app.service.withLock('ok-name', 10, undefined as never)],
      ['bad signal', (app) => app.service.lock('ok-name', 10, { signal: {} as never })],
      ['bad reason', (app) => app.service.forceRelease('ok-name', 5 as never)],
      ['bad purge', (app) => app.service.purge({ olderThan: -1 })],
    ];
    it.each(bad)(
      'rejects %s with InvalidArgumentError and touches nothing',
      async (_case, call) => {
        await expect(call(a)).rejects.toBeInstanceOf(InvalidArgumentError);
        expect(await a.service.inspect('ok-name')).toBeNull();
      },
    );
  });

  describe('transactions and shutdown', () => {
    it("runs lock statements outside the caller's open transaction", async () => {
      const name = fresh();
      const runner = a.dataSource.createQueryRunner();
      await runner.connect();
      await runner.startTransaction();
      await runner.query('SELECT 1');
      const lock = await a.service.lock(name, 1000);
      await runner.rollbackTransaction();
      await runner.release();
      expect((await b.service.inspect(name))?.status).toBe('held');
      await lock.unlock();
    });

    it('turns waiters away with ShuttingDownError when the app closes', async () => {
      const name = fresh();
      const holder = await a.service.lock(name, 1000);
      const c = await createTestApp(db, { tableName });
      const waiting = c.service.lock(name, 10_000).catch((e: unknown) => e);
      await sleep(100);
      await c.close();
      expect(await waiting).toBeInstanceOf(ShuttingDownError);
      await holder.unlock();
    });

    it('fails at startup with a message naming the fix when the table is missing', async () => {
      await expect(
        createTestApp(db, { tableName: uniqueTableName('rlock_missing') }, {}, false),
      ).rejects.toThrow(/does not exist.*createRLockMigration/s);
    });

    it('works on a table created by the exported migration', async () => {
      const migrated = uniqueTableName('rlock_mig');
      const source = new DataSource({
        ...db.options(),
        migrations: [createRLockMigration(migrated)],
      } as never);
      await source.initialize();
      await source.runMigrations();
      await source.destroy();
      const app = await createTestApp(db, { tableName: migrated }, {}, false);
      const lock = await app.service.lock('migrated', 1000);
      await lock.unlock();
      await app.close();
    });
  });
});
