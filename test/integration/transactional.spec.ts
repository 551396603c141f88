import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import {
  InvalidArgumentError,
  LastError,
  LockDatabaseError,
  LockLostError,
  LockManager,
  RLockService,
  WithRemoteLock,
} from '../../lib';
import { waiterTableName } from '../../lib/entities/rlock-waiter.entity';
import { lockKey } from '../../lib/internal/lock-key';
import { createTestApp, type TestApp } from '../support/app';
import { testDatabases, uniqueTableName } from '../support/databases';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let workTable = '';
let workCounter = 0;

/** Inserts one row of work (inside the section's transaction when given its manager). */
async function work(manager: { query(sql: string): Promise<unknown> }, id: string): Promise<void> {
  await manager.query(`INSERT INTO ${workTable} (id) VALUES ('${id}')`);
}

/** Whether the row of work `id` is committed (read outside any section). */
async function committed(app: TestApp, id: string): Promise<boolean> {
  const rows: unknown[] = await app.dataSource.query(
    `SELECT id FROM ${workTable} WHERE id = '${id}'`,
  );
  return rows.length === 1;
}

@Injectable()
class Builds {
  constructor(readonly rlock: RLockService) {}

  @WithRemoteLock((name: string) => name, { transactional: true, acquireTimeoutMs: 5_000 })
  async build(
    name: string,
    id: string,
    fail: Error | undefined,
    @LastError() lastError: Error | null = null,
    @LockManager() manager?: EntityManager,
  ) {
    await work(manager!, id);
    if (fail) throw fail;
    return { lastError, hasManager: manager !== undefined };
  }
}

describe.each(testDatabases())('Transactional sections on $label', (db) => {
  let tableName: string;
  let app1: TestApp;
  let app2: TestApp;
  let name: string;
  let id: string;

  beforeAll(async () => {
    tableName = uniqueTableName('rlock_tx');
    workTable = uniqueTableName('rlock_work');
    app1 = await createTestApp(db, { tableName, ttlMs: 3_000 }, { providers: [Builds] });
    app2 = await createTestApp(db, { tableName, ttlMs: 3_000 });
    await app1.dataSource.query(`CREATE TABLE ${workTable} (id varchar(64) PRIMARY KEY)`);
  });

  afterAll(async () => {
    await app1?.dataSource.query(`DROP TABLE ${workTable}`).catch(() => undefined);
    await app2?.close();
    await app1?.close();
  });

  beforeEach(() => {
    workCounter++;
    name = `tx:${workCounter}`;
    id = `w${workCounter}`;
  });

  it('commits the work and the release together: the next holder sees a clean outcome and the work', async () => {
    const result = await app1.service.withLock(
      name,
      { transactional: true },
      async (lock, manager) => {
        await work(manager, id);
        // Neither the work nor the release is visible outside before the commit.
        expect(await committed(app2, id)).toBe(false);
        expect((await app2.service.inspect(name))?.status).toBe('held');
        expect(app1.service.current()).toBe(lock);
        return 'done';
      },
    );
    expect(result).toBe('done');
    expect(await committed(app2, id)).toBe(true);
    const state = await app2.service.inspect(name);
    expect(state?.status).toBe('free');
    expect(state?.lastOutcome).toBe('released');
    await app2.service.withLock(name, 1_000, async (lock) => {
      expect(lock.lastError).toBeNull();
    });
  });

  it('rolls the work back on a throw, and the next holder gets the error', async () => {
    const boom = new Error('boom');
    await expect(
      app1.service.withLock(name, { transactional: true }, async (_lock, manager) => {
        await work(manager, id);
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(await committed(app2, id)).toBe(false);
    const state = await app2.service.inspect(name);
    expect(state?.lastOutcome).toBe('error');
    await app2.service.withLock(name, 1_000, async (lock) => {
      expect(lock.lastError?.message).toBe('boom');
    });
  });

  if (db.kind === 'sqlite') {
    it('SQLite: a takeover waits for the section (one writer), which commits', async () => {
      let forced: Promise<boolean> | undefined;
      await app1.service.withLock(name, { transactional: true }, async (_lock, manager) => {
        await work(manager, id);
        // Blocked by the section's write lock (retried): it runs after the commit.
        forced = app2.service.forceRelease(name, 'operator');
        await sleep(200);
      });
      expect(await forced).toBe(false);
      expect(await committed(app2, id)).toBe(true);
      expect((await app2.service.inspect(name))?.lastOutcome).toBe('released');
    });
  } else {
    it('a lock force-released and taken over mid-section cannot commit: LockLostError, no work', async () => {
      let resume!: () => void;
      const gate = new Promise<void>((resolve) => (resume = resolve));
      let working!: (fence: number) => void;
      const worked = new Promise<number>((resolve) => (working = resolve));
      const section = app1.service.withLock(
        name,
        { transactional: true },
        async (lock, manager) => {
          await work(manager, id);
          working(lock.fence);
          await gate;
          await work(manager, `${id}b`);
        },
      );
      // Another instance (outside the section's scope) evicts the holder and takes over.
      const fence = await worked;
      expect(await app2.service.forceRelease(name, 'operator')).toBe(true);
      const other = await app2.service.tryLock(name);
      expect(other).not.toBeNull();
      expect(other!.fence).toBeGreaterThan(fence);
      resume();
      await expect(section).rejects.toBeInstanceOf(LockLostError);
      expect(await committed(app2, id)).toBe(false);
      expect(await committed(app2, `${id}b`)).toBe(false);
      const state = await app2.service.inspect(name);
      expect(state?.status).toBe('held');
      expect(state?.lastOutcome).toBe('force-released');
      // The other holder's own work commits.
      await other!.unlock();
      await app2.service.withLock(name, { transactional: true }, (_lock, manager) =>
        work(manager, `${id}c`),
      );
      expect(await committed(app1, `${id}c`)).toBe(true);
    });

    it('a lock only force-released (nobody took it) cannot commit either', async () => {
      await expect(
        app1.service.withLock(name, { transactional: true }, async (_lock, manager) => {
          await work(manager, id);
          expect(await app2.service.forceRelease(name)).toBe(true);
        }),
      ).rejects.toBeInstanceOf(LockLostError);
      expect(await committed(app2, id)).toBe(false);
      expect((await app2.service.inspect(name))?.status).toBe('free');
    });
  }

  it('hands the lock to a waiter of another app in the same commit; it sees the work and a clean outcome', async () => {
    // Held first, so that the waiter takes its place in line before the section's
    // transaction begins (on SQLite the transaction holds the only write lock).
    const lock = await app1.service.lock(name, 1_000);
    const waiter = app2.service.withLock(name, 10_000, async (handed) => ({
      lastError: handed.lastError,
      fence: handed.fence,
      seen: await committed(app2, id),
    }));
    const waiters = waiterTableName(tableName);
    for (let i = 0; ; i++) {
      const rows: unknown[] = await app1.dataSource.query(
        `SELECT token FROM ${waiters} WHERE lock_id = '${lockKey(name)}'`,
      );
      if (rows.length > 0) break;
      if (i > 100) throw new Error('the waiter took no place in line');
      await sleep(20);
    }
    await app1.service.runHolding(lock, (_lock, manager) => work(manager, id), {});
    // Handed over in the release's commit: never free in between.
    const state = await app1.service.inspect(name);
    expect(state?.status).toBe('held');
    expect(state?.fence).toBe(lock.fence + 1);
    await expect(waiter).resolves.toEqual({ lastError: null, fence: lock.fence + 1, seen: true });
    expect((await app2.service.inspect(name))?.lastOutcome).toBe('released');
  });

  it('@WithRemoteLock({ transactional: true }) with @LockManager(): commits with success, rolls back on a throw', async () => {
    const builds = app1.module.get(Builds);
    await expect(builds.build(name, id, undefined)).resolves.toEqual({
      lastError: null,
      hasManager: true,
    });
    expect(await committed(app2, id)).toBe(true);
    const fail = new Error('decorated failure');
    await expect(builds.build(name, `${id}x`, fail)).rejects.toBe(fail);
    expect(await committed(app2, `${id}x`)).toBe(false);
    const again = await builds.build(name, `${id}y`, undefined);
    expect(again.lastError?.message).toBe('decorated failure');
    expect(await committed(app2, `${id}y`)).toBe(true);
  });

  it('keeps the lock through renewals while a long section runs, then commits', async () => {
    const renewed: string[] = [];
    const subscription = app1.service.events$.subscribe((event) => {
      if (event.type === 'renewed' || event.type === 'renewal-failed') renewed.push(event.type);
    });
    try {
      await app1.service.withLock(
        name,
        { transactional: true, ttlMs: 900 },
        async (lock, manager) => {
          await work(manager, id);
          // Past a renewal (a third of the lease); on SQLite within the lease, which its
          // renewals cannot extend while the section holds the write lock.
          await sleep(db.kind === 'sqlite' ? 500 : 1_000);
          expect(lock.isHeld).toBe(true);
        },
      );
    } finally {
      subscription.unsubscribe();
    }
    expect(await committed(app2, id)).toBe(true);
    expect((await app2.service.inspect(name))?.lastOutcome).toBe('released');
    // SQLite: the renewals wait for the section's write lock (retried), and go through after it.
    if (db.kind !== 'sqlite') expect(renewed).toContain('renewed');
    expect(renewed).not.toContain('renewal-failed');
  });

  if (db.kind === 'sqlite') {
    it('SQLite: a section past its lease sees its signal abort, and still commits (nobody could take over)', async () => {
      let aborted: unknown;
      await app1.service.withLock(
        name,
        { transactional: true, ttlMs: 300 },
        async (lock, manager) => {
          await work(manager, id);
          await sleep(600);
          aborted = lock.signal.reason;
        },
      );
      expect(aborted).toBeInstanceOf(LockLostError);
      expect(await committed(app2, id)).toBe(true);
      expect((await app2.service.inspect(name))?.lastOutcome).toBe('released');
    });
  }

  if (db.kind === 'postgres') {
    it('PostgreSQL, REPEATABLE READ: a renewal during the section makes the release a serialization failure (documented)', async () => {
      await expect(
        app1.service.withLock(
          name,
          { transactional: true, ttlMs: 600, isolationLevel: 'REPEATABLE READ' },
          async (_lock, manager) => {
            await work(manager, id);
            await sleep(700);
          },
        ),
      ).rejects.toBeInstanceOf(LockDatabaseError);
      expect(await committed(app2, id)).toBe(false);
      // Released outside with that failure: free for the next holder, who is told.
      const state = await app2.service.inspect(name);
      expect(state?.status).toBe('free');
      expect(state?.lastOutcome).toBe('error');
    });
  }

  // (Not on SQLite: a release outside waits for the section's own write lock.)
  (db.kind === 'sqlite' ? it.skip : it)(
    'commits the work alone when the section unlocked the lock itself',
    async () => {
      await app1.service.withLock(name, { transactional: true }, async (lock, manager) => {
        await work(manager, id);
        await lock.unlock();
        expect(lock.isHeld).toBe(false);
      });
      expect(await committed(app2, id)).toBe(true);
      expect((await app2.service.inspect(name))?.status).toBe('free');
    },
  );

  it('runs at the isolation level asked for', async () => {
    await app1.service.withLock(
      name,
      { transactional: true, isolationLevel: 'SERIALIZABLE' },
      async (_lock, manager) => {
        await manager.query(`SELECT count(*) AS n FROM ${workTable}`);
        await work(manager, id);
      },
    );
    expect(await committed(app2, id)).toBe(true);
    expect((await app2.service.inspect(name))?.lastOutcome).toBe('released');
  });

  it('refuses transactional re-entry and bad options', async () => {
    await app1.service.withLock(name, { transactional: true }, async () => {
      await expect(
        app1.service.withLock(name, { transactional: true, reentrant: true }, () => undefined),
      ).rejects.toBeInstanceOf(InvalidArgumentError);
    });
    await expect(
      app1.service.withLock(
        name,
        { transactional: true, isolationLevel: 'NONE' as never },
        () => undefined,
      ),
    ).rejects.toBeInstanceOf(InvalidArgumentError);
    expect((await app1.service.inspect(name))?.status).toBe('free');
  });
});
