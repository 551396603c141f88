import { startContenders } from './support/contention';
import { FULL, percentile, recordFigures, round } from './support/figures';
import { checkHistory, clockSlackMs, describeAnomalies } from './support/history';
import { canStartPrivate, startPrivateDb, type PrivateDb } from './support/private-db';
import { ReliabilityDb } from './support/reliability-db';

// R10 (full suite only): a private PostgreSQL / MariaDB instance is restarted twice under
// R1-style load, once cleanly and once as a crash. No overlap, no stuck lock afterwards,
// no waiter past its timeout; we measure the time from "database ready" to the next grant.
const PROCESSES = 6;
const DURATION = 30_000;
const TTL = 3_000;
const TIMEOUT = 5_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function retry<T>(fn: () => Promise<T>, times = 20): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await fn();
    } catch (error) {
      if (i >= times) throw error;
      await sleep(250);
    }
  }
}

const KINDS = ['postgres', 'mariadb'] as const;

(FULL ? describe.each(KINDS) : describe.skip.each(KINDS))(
  'R10 database restart mid-load on private %s',
  (kind: (typeof KINDS)[number]) => {
    let server: PrivateDb | undefined;
    let rdb: ReliabilityDb | undefined;
    beforeAll(async () => {
      if (!(await canStartPrivate(kind))) return;
      server = await startPrivateDb(kind);
      rdb = await ReliabilityDb.open(server.db);
    }, 180_000);
    afterAll(async () => {
      await rdb?.close().catch(() => undefined);
      await server?.stop();
    }, 120_000);

    it('keeps mutual exclusion through a clean and a crash restart', async () => {
      if (!server || !rdb) throw new Error(`cannot start a private ${kind} instance`);
      const contenders = await startContenders(rdb, [
        {
          name: 'r10',
          processes: PROCESSES,
          durationMs: DURATION,
          counterKey: 'r10',
          ttlMs: TTL,
          timeoutMs: TIMEOUT,
        },
      ]);
      const readyAt: number[] = [];
      const downAt: number[] = [];
      await sleep(6_000);
      downAt.push(Number(process.hrtime.bigint()));
      await server.restart('fast', 2);
      readyAt.push(Number(process.hrtime.bigint()));
      await sleep(8_000);
      downAt.push(Number(process.hrtime.bigint()));
      await server.restart('crash', 2);
      readyAt.push(Number(process.hrtime.bigint()));
      const summaries = await Promise.all(contenders.map((c) => c.done));
      await sleep(TTL + 500);
      const state = await retry(() => rdb!.service.inspect('r10'));
      const counter = Number((await retry(() => rdb!.read('r10'))).value);
      const events = rdb.readEvents();
      const report = checkHistory(events, {
        clockSlackMs: clockSlackMs(rdb.db.kind),
        crashes: [downAt[1]],
      });
      const grants = events
        .filter((e) => e.e === 'grant')
        .map((e) => e.hr)
        .sort((a, b) => a - b);
      const recoveryMs = readyAt.map(
        (ready) => ((grants.find((hr) => hr > ready) ?? NaN) - ready) / 1e6,
      );
      const outageMs = readyAt.map((ready, i) => (ready - downAt[i]) / 1e6);
      const accepted = events.filter((e) => e.e === 'write' && e.accepted).length;
      const uncertain = events.filter((e) => e.e === 'write-error').length;
      const lockErrors = events.filter((e) => e.e === 'lock-error');
      const maxWaitMs = Math.max(
        ...summaries.map((s) => s?.maxWaitMs ?? Infinity),
        ...lockErrors.map((e) => e.waitedMs as number),
      );
      const errorClasses = [...new Set(lockErrors.map((e) => e.error))].join(', ') || 'none';
      recordFigures(
        'R10',
        'database restart mid-load',
        `${kind === 'postgres' ? 'PostgreSQL' : 'MariaDB'} (private)`,
        'r10-database-restart.spec.ts',
        {
          load: `${PROCESSES} processes for ${DURATION / 1000} s, ttl ${TTL} ms, acquire timeout ${TIMEOUT} ms`,
          restarts: 'clean (fast shutdown) + crash (immediate / SIGKILL), 2 s down each',
          grants: report.grants,
          overlaps: report.overlaps,
          overlapsAfterExpiry: report.overlapsAfterExpiry,
          grantTimeInversions: `${report.grantTimeInversions} (max ${report.maxGrantTimeInversionMs} ms)`,
          anomalies: report.anomalies.length,
          acknowledgedReleasesLostInCrash: report.releasesLostInCrash,
          lostIncrements: Math.max(0, accepted - counter),
          uncertainWrites: uncertain,
          stuckLocksAfterRecovery: state?.status === 'held' ? 1 : 0,
          maxLockCallMs: round(maxWaitMs),
          lockErrorsDuringOutage: `${lockErrors.length} (${errorClasses})`,
          outageMs: outageMs.map((v) => round(v)),
          dbReadyToNextGrantMs: recoveryMs.map((v) => round(v)),
          dbReadyToNextGrantP50Ms: round(percentile(recoveryMs, 50)),
        },
      );
      if (report.anomalies.length > 0) throw new Error(describeAnomalies(report));
      expect(report.overlaps).toBe(0);
      expect(counter).toBeGreaterThanOrEqual(accepted);
      expect(counter).toBeLessThanOrEqual(accepted + uncertain);
      expect(state?.status).not.toBe('held');
      expect(maxWaitMs).toBeLessThan(TIMEOUT + 10_000);
      expect(recoveryMs.every((ms) => Number.isFinite(ms))).toBe(true);
    }, 240_000);
  },
);
