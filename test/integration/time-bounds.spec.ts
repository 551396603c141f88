import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { LockDatabaseError, RLockConfigurationError, RLockModule, RLockService } from '../../lib';
import type { LockDialect } from '../../lib/dialects/dialect.interface';
import { RLOCK_DIALECT } from '../../lib/rlock.constants';
import { testDatabases, uniqueTableName, type TestDatabase } from '../support/databases';

/** A Nest context whose TypeORM pool has `poolSize` connections (server databases). */
async function startApp(
  db: TestDatabase,
  tableName: string,
  poolSize: number,
  rlock: { waitConnections?: number } = {},
) {
  const pool =
    db.kind === 'postgres'
      ? { extra: { max: poolSize } }
      : db.kind === 'mariadb'
        ? { extra: { connectionLimit: poolSize } }
        : {};
  const module = await Test.createTestingModule({
    imports: [
      TypeOrmModule.forRoot({
        ...db.options(),
        ...pool,
        synchronize: true,
        autoLoadEntities: true,
      } as never),
      RLockModule.forRoot({ tableName, ...rlock }),
    ],
  }).compile();
  await module.init();
  return {
    service: module.get(RLockService),
    dataSource: module.get(DataSource),
    dialect: module.get<LockDialect>(RLOCK_DIALECT),
    close: () => module.close(),
  };
}

describe.each(testDatabases())('RLockService time bounds on $label', (db) => {
  const tableName = uniqueTableName('rlock_tb');
  let app: Awaited<ReturnType<typeof startApp>>;

  beforeAll(async () => {
    app = await startApp(db, tableName, 2);
  });
  afterAll(() => app?.close());

  it('settles at once when the caller aborts while its first attempt is in flight, and passes a late grant on', async () => {
    const name = 'abort-in-flight';
    const first = await app.service.lock(name, 1_000);
    await first.unlock(new Error('left by the first holder'));
    // Hold the next attempt's statement until the test lets it go.
    const acquire = app.dialect.acquire.bind(app.dialect);
    let letGo!: () => void;
    const gate = new Promise<void>((resolve) => (letGo = resolve));
    let sent!: () => void;
    const inFlight = new Promise<void>((resolve) => (sent = resolve));
    app.dialect.acquire = async (command) => {
      sent();
      await gate;
      return acquire(command);
    };
    try {
      const controller = new AbortController();
      const call = app.service.lock(name, 30_000, { signal: controller.signal });
      await inFlight;
      const reason = new Error('caller left');
      const abortedAt = performance.now();
      controller.abort(reason);
      await expect(call).rejects.toBe(reason);
      expect(performance.now() - abortedAt).toBeLessThan(100);
      letGo();
      // The grant that arrives after the caller left is passed on: free, outcome unchanged.
      const deadline = Date.now() + 5_000;
      let state = await app.service.inspect(name);
      while (state?.status !== 'free' && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        state = await app.service.inspect(name);
      }
      expect(state).toMatchObject({ status: 'free', lastOutcome: 'error' });
      expect(state?.lastError?.message).toBe('left by the first holder');
    } finally {
      app.dialect.acquire = acquire;
      letGo();
    }
  });

  it('gives up a renewal that gets no answer within a third of the lease, and renews again in time', async () => {
    const extend = app.dialect.extend.bind(app.dialect);
    let calls = 0;
    app.dialect.extend = (...args) => {
      // The first renewal never gets an answer (a connection that hangs).
      if (++calls === 1) return new Promise<never>(() => undefined);
      return extend(...args);
    };
    try {
      const lock = await app.service.lock('renewal-bound', 1_000, { ttlMs: 900 });
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      expect(calls).toBeGreaterThan(2);
      expect(lock.isHeld).toBe(true);
      expect(lock.signal.aborted).toBe(false);
      await lock.unlock();
    } finally {
      app.dialect.extend = extend;
    }
  });

  if (db.kind === 'sqlite') return;

  it('settles within its timeout plus a small bound when every pooled connection is taken', async () => {
    // Two transactions of the application hold both connections of the pool.
    let finish!: () => void;
    const done = new Promise<void>((resolve) => (finish = resolve));
    let open = 0;
    let bothOpen!: () => void;
    const opened = new Promise<void>((resolve) => (bothOpen = resolve));
    const transactions = [1, 2].map(() =>
      app.dataSource.transaction(async (manager) => {
        await manager.query('SELECT 1');
        if (++open === 2) bothOpen();
        await done;
      }),
    );
    await opened;
    try {
      const started = performance.now();
      const error = await app.service.lock('no-connection', 300).catch((e: unknown) => e);
      const took = performance.now() - started;
      expect(error).toBeInstanceOf(LockDatabaseError);
      expect(String((error as LockDatabaseError).cause)).toMatch(/did not answer within/);
      // 300 ms of timeout and 1 s of grace: well under the 10 s bound, never for ever.
      expect(took).toBeLessThan(10_000);
    } finally {
      finish();
      await Promise.all(transactions);
    }
    // The attempt that got a connection late passes its grant on: the lock ends free.
    const deadline = Date.now() + 5_000;
    let state = await app.service.inspect('no-connection');
    while (state !== null && state.status !== 'free' && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      state = await app.service.inspect('no-connection');
    }
    expect(state === null || state.status === 'free').toBe(true);
    const lock = await app.service.lock('no-connection', 1_000);
    await lock.unlock();
  });
});

describe.each(testDatabases())(
  'lease renewals on $label while the application fills the pool',
  (db) => {
    // A server's pool (SQLite has its own connection); never an empty table for describe.each.
    if (db.kind === 'sqlite') return;
    /** Holds every pooled connection in a transaction until `release()` is called. */
    async function fillPool(app: Awaited<ReturnType<typeof startApp>>, size: number) {
      let finish!: () => void;
      const done = new Promise<void>((resolve) => (finish = resolve));
      let open = 0;
      let allOpen!: () => void;
      const opened = new Promise<void>((resolve) => (allOpen = resolve));
      const transactions = Array.from({ length: size }, () =>
        app.dataSource.transaction(async (manager) => {
          await manager.query('SELECT 1');
          if (++open === size) allOpen();
          await done;
        }),
      );
      await opened;
      return async () => {
        finish();
        await Promise.all(transactions);
      };
    }

    it('keep a held lock alive on their own connection (waitConnections: 2, the default)', async () => {
      const app = await startApp(db, uniqueTableName('rlock_lane'), 2);
      try {
        const lock = await app.service.lock('lane', 1_000, { ttlMs: 600 });
        const release = await fillPool(app, 2);
        try {
          // Four lease lengths with no pooled connection free.
          await new Promise((resolve) => setTimeout(resolve, 2_400));
          expect(lock.isHeld).toBe(true);
          expect(lock.signal.aborted).toBe(false);
        } finally {
          await release();
        }
        await lock.unlock();
      } finally {
        await app.close();
      }
    });

    it('are lost with the pool when the module may not open that connection (waitConnections: 1)', async () => {
      const app = await startApp(db, uniqueTableName('rlock_nolane'), 2, { waitConnections: 1 });
      try {
        const lock = await app.service.lock('no-lane', 1_000, { ttlMs: 600 });
        const release = await fillPool(app, 2);
        try {
          await new Promise((resolve) => setTimeout(resolve, 2_400));
          expect(lock.isHeld).toBe(false);
          expect(lock.signal.aborted).toBe(true);
        } finally {
          await release();
        }
      } finally {
        await app.close();
      }
    });
  },
);

describe('RLockService on SQLite inside a transaction of the application', () => {
  const db = testDatabases().find((d) => d.kind === 'sqlite')!;
  it('names the self-deadlock instead of waiting for the timeout', async () => {
    const app = await startApp(db, uniqueTableName('rlock_self'), 1);
    try {
      await app.dataSource.transaction(async (manager) => {
        // A write: this transaction now holds the file's write lock.
        await manager.query(`CREATE TABLE self_deadlock_${process.pid} (x INTEGER)`);
        const started = performance.now();
        await expect(app.service.lock('self', 30_000)).rejects.toThrow(RLockConfigurationError);
        await expect(app.service.lock('self', 30_000)).rejects.toThrow(/Self-deadlock/);
        expect(performance.now() - started).toBeLessThan(10_000);
      });
      // Outside the transaction the same call succeeds.
      const lock = await app.service.lock('self', 1_000);
      await lock.unlock();
    } finally {
      await app.close();
    }
  });
});
