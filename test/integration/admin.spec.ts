import {
  ForceReleasedError,
  InvalidArgumentError,
  LeaseExpiredError,
  LockLostError,
  type LockState,
} from '../../lib';
import { lockKey } from '../../lib/internal/lock-key';
import { createTestApp, type TestApp } from '../support/app';
import { spawnSupport, waitForLine } from '../support/child-process';
import { testDatabases, uniqueTableName } from '../support/databases';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(testDatabases())('forceRelease and purge on $label', (db) => {
  const tableName = uniqueTableName('rlock_adm');
  const waitersTable = `${tableName}_waiters`;
  let a: TestApp;
  let b: TestApp;
  let n = 0;
  const fresh = (prefix: string) => `${prefix}-${++n}`;

  beforeAll(async () => {
    a = await createTestApp(db, { tableName, holder: 'app-a' });
    b = await createTestApp(db, { tableName, holder: 'app-b' });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
  });

  /** Polls inspect() until `check` holds. */
  async function until(name: string, check: (state: LockState | null) => boolean) {
    for (let i = 0; i < 200; i++) {
      const state = await a.service.inspect(name);
      if (check(state)) return state;
      await sleep(25);
    }
    throw new Error(`the lock "${name}" never reached the expected state`);
  }

  /** A place in line written as a waiting process writes it (its lease ends at `expiresAtUs`). */
  async function insertPlace(name: string, token: string, expiresAtUs: number): Promise<void> {
    const p = (i: number) => (db.kind === 'postgres' ? `$${i}` : '?');
    await a.dataSource.query(
      `INSERT INTO ${waitersTable} (token, lock_id, holder, ttl_ms, owner, queued_at, expires_at)
       VALUES (${[1, 2, 3, 4, 5, 6, 7].map(p).join(', ')})`,
      [
        token,
        lockKey(name),
        'a waiting process',
        10_000,
        'some-owner',
        Date.now() * 1000,
        expiresAtUs,
      ],
    );
  }

  async function placeExists(token: string): Promise<boolean> {
    const p = db.kind === 'postgres' ? '$1' : '?';
    const rows: unknown[] = await a.dataSource.query(
      `SELECT token FROM ${waitersTable} WHERE token = ${p}`,
      [token],
    );
    return rows.length === 1;
  }

  describe('forceRelease with a fence', () => {
    it('releases only the holding granted with that fence', async () => {
      const name = fresh('fenced');
      const seen = await a.service.lock(name, 1_000, { ttlMs: 60_000 });
      // The holding an operator saw ends; another holder takes the lock.
      await seen.unlock();
      const next = await b.service.lock(name, 1_000, { ttlMs: 60_000 });
      expect(next.fence).toBeGreaterThan(seen.fence);

      expect(await a.service.forceRelease(name, { fence: seen.fence, reason: 'stuck' })).toBe(
        false,
      );
      expect(await a.service.inspect(name)).toMatchObject({
        status: 'held',
        holder: 'app-b',
        fence: next.fence,
        lastOutcome: 'released',
      });
      await next.extend();
      expect(next.isHeld).toBe(true);

      expect(await a.service.forceRelease(name, { fence: next.fence, reason: 'stuck' })).toBe(true);
      await expect(next.extend()).rejects.toBeInstanceOf(LockLostError);
      const after = await a.service.lock(name, 1_000);
      expect(after.fence).toBe(next.fence + 2);
      expect(after.lastError).toBeInstanceOf(ForceReleasedError);
      expect(after.lastError!.message).toBe('stuck');
      await after.unlock();
      // A free lock: nothing to release, with or without a fence.
      expect(await a.service.forceRelease(name, { fence: after.fence })).toBe(false);
    });

    it('without a fence frees the lock whoever holds it, as before', async () => {
      const name = fresh('unfenced');
      const lock = await a.service.lock(name, 1_000, { ttlMs: 60_000 });
      expect(await b.service.forceRelease(name, { reason: 'operator' })).toBe(true);
      await expect(lock.extend()).rejects.toBeInstanceOf(LockLostError);
      const again = await a.service.lock(name, 1_000, { ttlMs: 60_000 });
      expect(await b.service.forceRelease(name)).toBe(true);
      await expect(again.extend()).rejects.toBeInstanceOf(LockLostError);
      const last = await a.service.lock(name, 1_000);
      expect(last.lastError).toBeInstanceOf(ForceReleasedError);
      expect(last.fence).toBe(again.fence + 2);
      await last.unlock();
    });

    it.each([
      ['a negative fence', { fence: -1 }],
      ['a fractional fence', { fence: 1.5 }],
      ['a string fence', { fence: '12' }],
      ['an unknown option', { fenc: 12 }],
      ['a long reason', { reason: 'x'.repeat(1001) }],
    ])('rejects %s with InvalidArgumentError', async (_case, options) => {
      const name = fresh('bad-options');
      const lock = await a.service.lock(name, 1_000, { ttlMs: 60_000 });
      await expect(a.service.forceRelease(name, options as never)).rejects.toBeInstanceOf(
        InvalidArgumentError,
      );
      expect((await a.service.inspect(name))?.status).toBe('held');
      await lock.unlock();
    });
  });

  describe('purge', () => {
    it('keeps the row of a holder whose lease ran out: the next holder gets LeaseExpiredError', async () => {
      const name = fresh('crashed');
      const child = spawnSupport('hold-lock.js', {
        kind: db.kind,
        url: db.url,
        name,
        ttlMs: 300,
        rlock: { tableName, holder: 'doomed-child' },
      });
      const fence = Number((await waitForLine(child, /^HELD \d+/)).split(' ')[1]);
      child.kill('SIGKILL');
      await until(name, (state) => state?.status === 'expired');
      await sleep(10);

      await a.service.purge({ olderThan: 0 });
      const state = await a.service.inspect(name);
      expect(state).toMatchObject({ status: 'expired', holder: 'doomed-child', fence });
      expect((await a.service.list()).map((lock) => lock.name)).toContain(name);

      const next = await b.service.lock(name, 1_000);
      expect(next.lastError).toBeInstanceOf(LeaseExpiredError);
      expect(next.lastError).toMatchObject({ holder: 'doomed-child', fence });
      expect(next.fence).toBe(fence + 1);
      await next.unlock();
      // Released now: the next purge deletes it.
      await sleep(10);
      await a.service.purge({ olderThan: 0 });
      expect(await a.service.inspect(name)).toBeNull();
    });

    it('deletes released rows unused for the given age only', async () => {
      const name = fresh('released');
      await (await a.service.lock(name, 1_000)).unlock();
      const held = await a.service.lock(fresh('held'), 1_000, { ttlMs: 60_000 });
      expect(await a.service.purge({ olderThan: 3_600_000 })).toBe(0);
      await sleep(10);
      expect(await a.service.purge({ olderThan: 0 })).toBeGreaterThanOrEqual(1);
      expect(await a.service.inspect(name)).toBeNull();
      expect((await a.service.inspect(held.name))?.status).toBe('held');
      await held.unlock();
    });

    it('deletes the places whose lease ran out, and keeps a free lock that a live place waits for', async () => {
      const name = fresh('waited-for');
      await (await a.service.lock(name, 1_000)).unlock();
      const dead = 'dead0000000000000000000000000000';
      const live = 'live0000000000000000000000000000';
      await insertPlace(name, dead, 1);
      await insertPlace(name, live, (Date.now() + 3_600_000) * 1000);
      await sleep(10);

      await a.service.purge({ olderThan: 0 });
      expect(await placeExists(dead)).toBe(false);
      expect(await placeExists(live)).toBe(true);
      expect((await a.service.inspect(name))?.status).toBe('free');

      // Nobody waits any more: the row goes.
      await a.dataSource.query(
        `DELETE FROM ${waitersTable} WHERE token = ${db.kind === 'postgres' ? '$1' : '?'}`,
        [live],
      );
      await a.service.purge({ olderThan: 0 });
      expect(await a.service.inspect(name)).toBeNull();
    });
  });
});
