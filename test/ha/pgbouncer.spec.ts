import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import { createTestApp, type TestApp } from '../support/app';
import { testDatabase } from '../support/databases';
import {
  HA_REQUIRED,
  killWorkers,
  nowUs,
  readEvents,
  runDirectory,
  saveFigures,
  startWorkers,
  type Worker,
  type WorkerConfig,
} from './harness';
import { checkHistory } from './history';

// Topology (scripts/ha/pgbouncer.sh): PostgreSQL behind PgBouncer 1.18 in transaction
// pooling mode with 4 server connections for every client. `npm run test:ha` starts it and
// sets RLOCK_HA_PGBOUNCER_URL.
const url = process.env.RLOCK_HA_PGBOUNCER_URL;
const describeHa = url || HA_REQUIRED ? describe : describe.skip;

/** How many statements the server log shows failing with 40001. */
function serializationFailures(log: string): number {
  if (!existsSync(log)) return 0;
  return readFileSync(log, 'utf8').split('could not serialize access').length - 1;
}

describeHa('PostgreSQL behind PgBouncer in transaction pooling mode', () => {
  jest.setTimeout(120_000);
  const tableName = 'rlock_ha';
  const counterTable = 'rlock_ha_counter';
  let app: TestApp;
  let workers: Worker[] = [];

  beforeAll(async () => {
    if (!url) throw new Error('RLOCK_HA_PGBOUNCER_URL is not set: run `npm run test:ha`');
    app = await createTestApp(testDatabase('postgres', url), { tableName });
    await app.dataSource.query(
      `CREATE TABLE IF NOT EXISTS ${counterTable} (id varchar(255) PRIMARY KEY, value bigint NOT NULL, fence bigint NOT NULL)`,
    );
    await app.dataSource.query(
      `INSERT INTO ${counterTable} VALUES ('pgb-main', 0, 0), ('pgb-second', 0, 0) ON CONFLICT (id) DO UPDATE SET value = 0, fence = 0`,
    );
  });
  afterEach(() => killWorkers(workers));
  afterAll(() => app?.close());

  const base = (label: string, name: string): WorkerConfig => ({
    kind: 'postgres',
    url: url!,
    label,
    tableName,
    counterTable,
    name,
    mode: 'loop',
    runMs: 10_000,
    ttlMs: 3_000,
    acquireTimeoutMs: 15_000,
    errorEvery: 5,
  });

  it('keeps mutual exclusion (R1) and a clean history (R2) with server sessions shared between clients', async () => {
    const dir = runDirectory('pgbouncer');
    workers = await startWorkers(dir, [
      ...[1, 2, 3, 4].map((i) => base(`main-${i}`, 'pgb-main')),
      ...[1, 2].map((i) => base(`second-${i}`, 'pgb-second')),
    ]);
    const codes = await Promise.all(workers.map((w) => w.exited));
    expect(codes).toEqual(workers.map(() => 0));
    const events = readEvents(dir);
    const report = checkHistory(events);
    const rows = (await app.dataSource.query(`SELECT id, value FROM ${counterTable}`)) as {
      id: string;
      value: string;
    }[];
    const counters = Object.fromEntries(rows.map((row) => [row.id, Number(row.value)]));
    const accepted = (name: string) =>
      events.filter((e) => e.e === 'write' && e.n === name && e.ok).length;
    const errors = events.filter((e) => e.e.endsWith('error') || e.e === 'lost');

    saveFigures('pgbouncer', {
      topology:
        'PostgreSQL 15 behind PgBouncer 1.18, pool_mode=transaction, default_pool_size=4, 6 processes',
      history: report,
      errorsReportedToCallers: errors.length,
      errorSamples: errors.slice(0, 5).map((e) => `${e.e}:${e.err}:${e.cause ?? ''}`),
      counters: Object.fromEntries(
        ['pgb-main', 'pgb-second'].map((name) => [
          name,
          { value: counters[name], acceptedWrites: accepted(name) },
        ]),
      ),
    });
    expect(report.details).toEqual([]);
    expect(report.anomalies).toBe(0);
    expect(errors).toEqual([]);
    // Nobody gave up and no connection was cut: every fence went to a process that used it.
    expect(report.ghostGrants).toBe(0);
    expect(counters['pgb-main']).toBe(accepted('pgb-main'));
    expect(counters['pgb-second']).toBe(accepted('pgb-second'));
  });

  it('retries serialization failures (40001) inside the library at SERIALIZABLE isolation, as CockroachDB runs', async () => {
    const serializableUrl = process.env.RLOCK_HA_PG_SERIALIZABLE_URL;
    if (!serializableUrl)
      throw new Error('RLOCK_HA_PG_SERIALIZABLE_URL is not set: run `npm run test:ha`');
    const serializable = await createTestApp(testDatabase('postgres', serializableUrl), {
      tableName,
    });
    const log = join(process.env.RLOCK_HA_DIR ?? '/tmp/rlock-ha', 'pgbouncer', 'pg.log');
    const failuresBefore = serializationFailures(log);
    try {
      await serializable.dataSource.query(
        `CREATE TABLE IF NOT EXISTS ${counterTable} (id varchar(255) PRIMARY KEY, value bigint NOT NULL, fence bigint NOT NULL)`,
      );
      await serializable.dataSource.query(
        `INSERT INTO ${counterTable} VALUES ('ser-main', 0, 0) ON CONFLICT (id) DO UPDATE SET value = 0, fence = 0`,
      );
      const dir = runDirectory('serializable');
      workers = await startWorkers(
        dir,
        [1, 2, 3, 4, 5, 6].map((i) => ({
          ...base(`ser-${i}`, 'ser-main'),
          url: serializableUrl,
          runMs: 8_000,
        })),
      );
      const codes = await Promise.all(workers.map((w) => w.exited));
      expect(codes).toEqual(workers.map(() => 0));
      const events = readEvents(dir);
      const report = checkHistory(events);
      const [row] = (await serializable.dataSource.query(
        `SELECT value FROM ${counterTable} WHERE id = 'ser-main'`,
      )) as {
        value: string;
      }[];
      const errors = events.filter((e) => e.e.endsWith('error') || e.e === 'lost');
      saveFigures('pg-serializable', {
        topology:
          'PostgreSQL 15 behind PgBouncer, default_transaction_isolation=serializable, 6 processes, 1 name',
        history: report,
        serializationFailuresOnServer: serializationFailures(log) - failuresBefore,
        errorsReportedToCallers: errors.length,
        errorSamples: errors.slice(0, 5).map((e) => `${e.e}:${e.err}:${e.cause ?? ''}`),
        counter: { value: Number(row.value), acceptedWrites: report.acceptedWrites },
      });
      expect(report.details).toEqual([]);
      expect(report.anomalies).toBe(0);
      expect(
        errors.filter((e) => e.err !== 'AcquireTimeoutError' && e.e !== 'write-error'),
      ).toEqual([]);
      expect(Number(row.value)).toBe(report.acceptedWrites);
    } finally {
      await serializable.close();
    }
  });

  it('hands released locks to a waiting instance at polling speed or better: no wake-up relies on a session', async () => {
    const waiter = await createTestApp(testDatabase('postgres', url!), { tableName });
    const handOffs: number[] = [];
    try {
      for (let i = 0; i < 5; i++) {
        const holder = await app.service.lock('pgb-wake', 5_000);
        const waiting = waiter.service.lock('pgb-wake', 10_000);
        await new Promise((resolve) => setTimeout(resolve, 700));
        const released = nowUs();
        await holder.unlock();
        const next = await waiting;
        handOffs.push((nowUs() - released) / 1000);
        expect(next.fence).toBe(holder.fence + 1);
        await next.unlock();
      }
    } finally {
      await waiter.close();
    }
    saveFigures('pgbouncer-wake', { handOffMs: handOffs.map((ms) => Math.round(ms)) });
    // Polling (backoff capped at 200 ms by default) plus round trips and a loaded machine's
    // slack. A waiter that believes a LISTEN on a pooled session wakes it polls far less often.
    expect(Math.max(...handOffs)).toBeLessThan(1_000);
  });

  it('leaves no session state behind in the shared server sessions (advisory locks, lock waits, places in line)', async () => {
    const directUrl = process.env.RLOCK_HA_PG_DIRECT_URL;
    if (!directUrl) throw new Error('RLOCK_HA_PG_DIRECT_URL is not set: run `npm run test:ha`');
    const direct = new Client({ connectionString: directUrl });
    await direct.connect();
    try {
      const { rows } = await direct.query(
        `SELECT count(*) FILTER (WHERE l.granted)::int AS held, count(*) FILTER (WHERE NOT l.granted)::int AS blocked
         FROM pg_locks l WHERE l.locktype = 'advisory'`,
      );
      // Backends waiting for a lock of any kind (a row lock of the lock table, a relation).
      const [waits] = (
        await direct.query(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock'`,
        )
      ).rows;
      // Live places in the lines (keys are SHA-256 hex: other rows of the table are not places).
      const [places] = (
        await direct.query(
          `SELECT count(*)::int AS n FROM ${tableName}_waiters
           WHERE length(lock_id) = 64 AND expires_at > (extract(epoch FROM clock_timestamp()) * 1000000)::bigint`,
        )
      ).rows;
      saveFigures('pgbouncer-sessions', {
        advisoryLocksLeftHeld: rows[0].held,
        backendsLeftBlocked: rows[0].blocked,
        backendsInLockWaits: waits.n,
        livePlacesLeftInLine: places.n,
      });
      expect(rows[0]).toEqual({ held: 0, blocked: 0 });
      expect(waits.n).toBe(0);
      expect(places.n).toBe(0);
    } finally {
      await direct.end();
    }
  });
});
