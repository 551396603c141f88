import {
  AcquireTimeoutError,
  HoldLimitExceededError,
  InvalidArgumentError,
  type RemoteLock,
} from '../../lib';
import { createTestApp, type TestApp } from '../support/app';
import { spawnSupport, waitForLine } from '../support/child-process';
import { testDatabases, uniqueTableName } from '../support/databases';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `read` until `done` holds, or fails after `timeoutMs`. */
async function until<T>(read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`not reached within ${timeoutMs} ms`);
    await sleep(20);
  }
}

describe.each(testDatabases())('hold bounds and once per period on $label', (db) => {
  const tableName = uniqueTableName('rlock_hb');
  let app: TestApp;
  let n = 0;
  const fresh = () => `hold-${++n}`;

  beforeAll(async () => {
    app = await createTestApp(db, { tableName });
  });
  afterAll(() => app?.close());

  describe('minHoldMs', () => {
    it('keeps a released lock taken until the minimum hold ends, with the outcome recorded at once', async () => {
      const name = fresh();
      const lock = await app.service.lock(name, 1_000, { minHoldMs: 1_500 });
      await lock.unlock(new Error('done early'));
      const state = await app.service.inspect(name);
      expect(state).toMatchObject({ status: 'held', lastOutcome: 'error' });
      expect(state!.holdUntil!.getTime()).toBe(state!.acquiredAt!.getTime() + 1_500);
      expect(await app.service.tryLock(name)).toBeNull();
      // A waiter gets it once the hold ends (not before), with the outcome left for it.
      const started = Date.now();
      const next = await app.service.lock(name, 10_000);
      expect(Date.now()).toBeGreaterThanOrEqual(state!.holdUntil!.getTime() - 50);
      expect(Date.now() - started).toBeLessThan(8_000);
      expect(next.lastError?.message).toBe('done early');
      await next.unlock();
    });

    it('holds in the database: the holder killed right after its release does not free it early', async () => {
      const name = fresh();
      const child = spawnSupport('release-and-wait.js', {
        kind: db.kind,
        url: db.url,
        name,
        options: { minHoldMs: 2_000 },
        rlock: { tableName },
      });
      await waitForLine(child, /^RELEASED \d+/);
      child.kill('SIGKILL');
      const state = await app.service.inspect(name);
      expect(state).toMatchObject({ status: 'held', lastOutcome: 'error' });
      expect(await app.service.tryLock(name)).toBeNull();
      const free = await until(
        () => app.service.tryLock(name),
        (lock) => lock !== null,
      );
      expect(Date.now()).toBeGreaterThanOrEqual(state!.holdUntil!.getTime() - 50);
      expect(free!.lastError?.message).toBe('left by the child');
      await free!.unlock();
    });

    it('is not a lease: a holder that crashed frees the lock at its lease end', async () => {
      const name = fresh();
      const child = spawnSupport('hold-lock.js', {
        kind: db.kind,
        url: db.url,
        name,
        ttlMs: 500,
        rlock: { tableName },
      });
      await waitForLine(child, /^HELD \d+/);
      child.kill('SIGKILL');
      const next = await app.service.lock(name, 10_000, { minHoldMs: 60_000 });
      expect(next.lastError?.name).toBe('LeaseExpiredError');
      await next.unlock();
    });
  });

  describe('maxHoldMs', () => {
    it('frees the lock at the limit even while the holder keeps renewing, and tells the next holder', async () => {
      const name = fresh();
      const stuck = await app.service.lock(name, 1_000, { ttlMs: 300, maxHoldMs: 1_200 });
      const limit = (await app.service.inspect(name))!.holdLimit!.getTime();
      expect(limit).toBe((await app.service.inspect(name))!.acquiredAt!.getTime() + 1_200);
      // The holder renews every 100 ms and never releases; another caller waits.
      const next = await app.service.lock(name, 10_000);
      expect(Date.now()).toBeGreaterThanOrEqual(limit - 50);
      expect(next.lastError).toBeInstanceOf(HoldLimitExceededError);
      expect(next.lastError).toMatchObject({ fence: stuck.fence, code: 'RLOCK_HOLD_LIMIT' });
      expect((await app.service.inspect(name))!.lastOutcome).toBe('overran');
      expect(stuck.isHeld).toBe(false);
      expect(stuck.signal.reason).toBeInstanceOf(HoldLimitExceededError);
      await next.unlock();
    });

    it('caps the first lease too: a maximum hold shorter than the ttl ends the lease at the limit', async () => {
      const name = fresh();
      const lock = await app.service.lock(name, 1_000, { ttlMs: 60_000, maxHoldMs: 500 });
      const state = await app.service.inspect(name);
      expect(state!.expiresAt!.getTime()).toBe(state!.acquiredAt!.getTime() + 500);
      await lock.unlock().catch(() => undefined);
    });
  });

  describe('oncePer', () => {
    it('grants one run per period: a free lock is refused to a second run of the same period', async () => {
      const name = fresh();
      const first = (await app.service.tryLock(name, { oncePer: '1h' })) as RemoteLock;
      expect(first).not.toBeNull();
      await first.unlock();
      const state = await app.service.inspect(name);
      expect(state!.status).toBe('free');
      const hour = 3_600_000;
      expect(state!.lastTickAt!.getTime()).toBe(
        Math.floor(state!.acquiredAt!.getTime() / hour) * hour,
      );
      expect(await app.service.tryLock(name, { oncePer: '1h' })).toBeNull();
      // Without oncePer the free lock is granted as usual.
      const plain = await app.service.tryLock(name);
      expect(plain).not.toBeNull();
      await plain!.unlock();
    });

    it('grants again in the next period', async () => {
      const name = fresh();
      const first = await app.service.tryLock(name, { oncePer: 400 });
      expect(first).not.toBeNull();
      await first!.unlock();
      const again = await until(
        () => app.service.tryLock(name, { oncePer: 400 }),
        (lock) => lock !== null,
        5_000,
      );
      expect(again!.fence).toBe(first!.fence + 1);
      await again!.unlock();
    });

    it('makes one attempt even with an acquire timeout, and rejects a bad period', async () => {
      const name = fresh();
      const first = await app.service.lock(name, 5_000, { oncePer: '1h' });
      await first.unlock();
      const started = Date.now();
      await expect(app.service.lock(name, 5_000, { oncePer: '1h' })).rejects.toBeInstanceOf(
        AcquireTimeoutError,
      );
      expect(Date.now() - started).toBeLessThan(2_000);
      await expect(app.service.tryLock(name, { oncePer: '1 minute' })).rejects.toBeInstanceOf(
        InvalidArgumentError,
      );
    });
  });
});
