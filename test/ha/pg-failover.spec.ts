import { createTestApp, type TestApp } from '../support/app';
import { testDatabase } from '../support/databases';
import {
  HA_REQUIRED,
  haScript,
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

// Topology (scripts/ha/pg-sync.sh): PostgreSQL 15 primary + synchronous standby, the
// application reaching the primary through HAProxy. `npm run test:ha` starts it and sets
// RLOCK_HA_PG_SYNC_URL (the proxy).
const url = process.env.RLOCK_HA_PG_SYNC_URL;
const describeHa = url || HA_REQUIRED ? describe : describe.skip;

describeHa('PostgreSQL primary + synchronous standby behind HAProxy, across a failover', () => {
  jest.setTimeout(180_000);
  const tableName = 'rlock_ha';
  const counterTable = 'rlock_ha_counter';
  let app: TestApp;
  let workers: Worker[] = [];

  beforeAll(async () => {
    if (!url) throw new Error('RLOCK_HA_PG_SYNC_URL is not set: run `npm run test:ha`');
    app = await createTestApp(testDatabase('postgres', url), { tableName });
    await app.dataSource.query(
      `CREATE TABLE IF NOT EXISTS ${counterTable} (id varchar(255) PRIMARY KEY, value bigint NOT NULL, fence bigint NOT NULL)`,
    );
    await app.dataSource.query(
      `INSERT INTO ${counterTable} VALUES ('ha-main', 0, 0), ('ha-second', 0, 0) ON CONFLICT (id) DO UPDATE SET value = 0, fence = 0`,
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
    runMs: 15_000,
    ttlMs: 3_000,
    acquireTimeoutMs: 15_000,
    errorEvery: 5,
    sectionMs: 2,
  });

  it('keeps exclusion, fences and stored outcomes when the primary is stopped hard and the standby promoted', async () => {
    const stored = await app.service.lock('ha-outcome', 5_000);
    await stored.unlock(new Error('stored before the failover'));

    const dir = runDirectory('pg-sync');
    workers = await startWorkers(dir, [
      ...[1, 2, 3, 4].map((i) => base(`main-${i}`, 'ha-main')),
      ...[1, 2].map((i) => base(`second-${i}`, 'ha-second')),
      { ...base('held', 'ha-held'), mode: 'hold', holdMs: 10_000 },
    ]);
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    await haScript('pg-sync', 'stop-primary');
    const primaryLost = nowUs();
    await haScript('pg-sync', 'promote');
    const proxyMoved = nowUs();
    const codes = await Promise.all(workers.map((w) => w.exited));
    expect(codes).toEqual(workers.map(() => 0));

    const events = readEvents(dir);
    const report = checkHistory(events);
    const grantsAfter = events
      .filter((e) => e.e === 'grant' && e.t > primaryLost)
      .sort((a, b) => a.t - b.t);
    const fencesIncrease = ['ha-main', 'ha-second'].every((name) => {
      const before = events.filter((e) => e.e === 'grant' && e.n === name && e.t < primaryLost);
      const after = events.filter((e) => e.e === 'grant' && e.n === name && e.t > proxyMoved);
      return (
        before.length > 0 &&
        after.length > 0 &&
        Math.max(...before.map((e) => e.f!)) < Math.min(...after.map((e) => e.f!))
      );
    });
    const counters = new Map<string, number>(
      (
        (await app.dataSource.query(`SELECT id, value FROM ${counterTable}`)) as {
          id: string;
          value: string;
        }[]
      ).map((row) => [row.id, Number(row.value)]),
    );
    const accepted = (name: string) =>
      events.filter((e) => e.e === 'write' && e.n === name && e.ok).length;
    const uncertain = (name: string) =>
      events.filter((e) => e.e === 'write-error' && e.n === name).length;
    const held = events.filter((e) => e.n === 'ha-held');
    const next = await app.service.lock('ha-outcome', 10_000);
    await next.unlock();

    saveFigures('pg-sync', {
      topology:
        'PostgreSQL 15 primary + synchronous standby (synchronous_commit=on) behind HAProxy 2.6',
      processes: workers.length,
      history: report,
      fencesStrictlyIncreaseAcrossFailover: fencesIncrease,
      msFromPrimaryLossToProxyMoved: (proxyMoved - primaryLost) / 1000,
      msFromProxyMovedToNextGrant: grantsAfter.length
        ? (grantsAfter[0].t - proxyMoved) / 1000
        : null,
      msFromPrimaryLossToNextGrant: grantsAfter.length
        ? (grantsAfter[0].t - primaryLost) / 1000
        : null,
      counters: Object.fromEntries(
        ['ha-main', 'ha-second'].map((name) => [
          name,
          {
            value: counters.get(name),
            acceptedWrites: accepted(name),
            uncertainWrites: uncertain(name),
          },
        ]),
      ),
      holderAcrossFailover: held.map((e) => `${e.e}${e.err ? `(${e.err})` : ''}`).join(' → '),
      storedOutcomeSurvived: next.lastError?.message === 'stored before the failover',
    });

    expect(report.details).toEqual([]);
    expect(report.overlaps).toBe(0);
    expect(report.anomalies).toBe(0);
    expect(fencesIncrease).toBe(true);
    expect(grantsAfter.length).toBeGreaterThan(0);
    for (const name of ['ha-main', 'ha-second']) {
      expect(counters.get(name)).toBeGreaterThanOrEqual(accepted(name));
      expect(counters.get(name)).toBeLessThanOrEqual(accepted(name) + uncertain(name));
    }
    // Synchronous replication: the holder's row survived, it kept the lock and released it.
    expect(held.map((e) => e.e)).toEqual(['grant', 'release']);
    expect(next.lastError?.message).toBe('stored before the failover');
    expect(next.fence).toBe(stored.fence + 1);
  });

  it('tells a holder whose row did not survive (standby degraded to asynchronous) through its signal', async () => {
    await haScript('pg-sync', 'rebuild-standby');
    await haScript('pg-sync', 'async-standby');
    // Grants the standby will never see: the fence of ha-main moves on only on this primary.
    let lastMainFence = 0;
    for (let i = 0; i < 3; i++) {
      const lock = await app.service.lock('ha-main', 10_000);
      lastMainFence = lock.fence;
      await lock.unlock();
    }
    const dir = runDirectory('pg-async');
    workers = await startWorkers(dir, [
      { ...base('async-holder', 'ha-async'), mode: 'hold', holdMs: 8_000 },
    ]);
    await workers[0].printed(/HELD/);
    const primaryLost = nowUs();
    await haScript('pg-sync', 'failover');
    expect(await workers[0].exited).toBe(0);
    const events = readEvents(dir);
    const lost = events.find((e) => e.e === 'lost');
    const holderFence = events.find((e) => e.e === 'grant')!.f!;
    const after = await app.service.lock('ha-async', 10_000);
    await after.unlock();
    const main = await app.service.lock('ha-main', 10_000);
    await main.unlock();

    saveFigures('pg-async', {
      topology: 'same, standby degraded to asynchronous and disconnected before the failover',
      holderEvents: events
        .map((e) => `${e.e}${e.why ? `(${e.why})` : e.err ? `(${e.err})` : ''}`)
        .join(' → '),
      msFromPrimaryLossToSignal: lost ? (lost.t - primaryLost) / 1000 : null,
      fenceOfLostRowHolder: holderFence,
      fenceOfNextGrantSameName: after.fence,
      mainFenceBeforeFailover: lastMainFence,
      mainFenceAfterFailover: main.fence,
      mainFenceReused: main.fence <= lastMainFence,
    });
    expect(lost?.why).toBeDefined();
    expect(events.find((e) => e.e === 'release-error')?.err).toBe('LockLostError');
    // A row created anew starts its fence from the clock: still above the lost holder's.
    expect(after.fence).toBeGreaterThan(holderFence);
  });
});
