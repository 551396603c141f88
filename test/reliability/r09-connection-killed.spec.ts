import { testDatabases } from '../support/databases';
import { Agent, stopAll } from './support/agent';
import { FULL, percentile, recordFigures, round } from './support/figures';
import { checkHistory, clockSlackMs, describeAnomalies } from './support/history';
import { ReliabilityDb } from './support/reliability-db';

// R9: the library's own connections are killed from the database side
// (pg_terminate_backend / KILL CONNECTION, only sessions our child reported) while it
// holds a lock and while it waits for one. The lock must be kept, or its loss signalled
// within one renewal interval; later acquires of the same app must all succeed.
const ROUNDS = FULL ? 10 : 3;
const TTL = 1_500;
const LATER = 5;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const servers = testDatabases().filter((db) => db.kind !== 'sqlite');

(servers.length > 0
  ? describe.each(servers)
  : describe.skip.each([{ label: 'no server database' }]))(
  'R9 connection killed on $label',
  (db: any) => {
    let rdb: ReliabilityDb;
    const agents: Agent[] = [];
    beforeAll(async () => {
      rdb = await ReliabilityDb.open(db);
    });
    afterAll(async () => {
      await stopAll(agents);
      await rdb?.close();
    });

    it('keeps the lock (or signals its loss) and acquires again after its sessions are killed', async () => {
      const [a, b] = await Promise.all(
        ['a', 'b'].map((label) =>
          Agent.start(
            rdb.childConfig({
              eventsFile: rdb.eventsFile(label),
              poolSize: 3,
              appName: `rlock-rel-r9-${label}`,
            }),
          ),
        ),
      );
      agents.push(a, b);
      let kept = 0;
      let lostInTime = 0;
      let lostLate = 0;
      const detectMs: number[] = [];
      let later = 0;
      let killed = 0;
      const waitOutcomes: string[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        // While held.
        const name = `r9:held:${round}`;
        const lock = await a.call('lock', { name, timeoutMs: 5_000, ttlMs: TTL });
        const { ids } = await a.call('warmPool', { count: 3 });
        await rdb.killSessions(ids);
        killed += ids.length;
        const killedAt = Number(process.hrtime.bigint());
        await sleep(TTL / 3 + 300);
        const early = await a.call('state', { handle: lock.handle });
        await sleep(TTL + 500);
        const state = await a.call('state', { handle: lock.handle });
        const row = await rdb.service.inspect(name);
        if (!state.aborted && state.isHeld && row?.status === 'held' && row.fence === lock.fence)
          kept++;
        else if (early.aborted) lostInTime++;
        else lostLate++;
        if (state.aborted) {
          const lostEvent = rdb
            .readEvents()
            .find((e) => e.e === 'lost' && e.fence === lock.fence && e.name === name);
          if (lostEvent) detectMs.push((lostEvent.hr - killedAt) / 1e6);
        }
        await a.call('unlock', { handle: lock.handle });
        for (let i = 0; i < LATER; i++) {
          const again = await a.call('lock', { name, timeoutMs: 5_000, ttlMs: TTL });
          if (again.error === undefined && (await a.call('unlock', { handle: again.handle })).ok)
            later++;
        }

        // While waiting.
        const waitName = `r9:wait:${round}`;
        const held = await b.call('lock', { name: waitName, timeoutMs: 5_000 });
        const waiting = a.call('lock', { name: waitName, timeoutMs: 10_000, ttlMs: TTL });
        await sleep(200);
        const waiterIds = (await a.call('connectionIds')).ids as number[];
        await rdb.killSessions(waiterIds);
        killed += waiterIds.length;
        await sleep(300);
        await b.call('unlock', { handle: held.handle });
        const outcome = await waiting;
        waitOutcomes.push(outcome.error ? outcome.error.class : 'granted');
        if (!outcome.error) await a.call('unlock', { handle: outcome.handle });
        const retry = await a.call('lock', { name: waitName, timeoutMs: 5_000, ttlMs: TTL });
        if (retry.error === undefined && (await a.call('unlock', { handle: retry.handle })).ok)
          later++;
      }
      const report = checkHistory(rdb.readEvents(), { clockSlackMs: clockSlackMs(rdb.db.kind) });
      const laterTotal = ROUNDS * (LATER + 1);
      recordFigures('R9', 'connection killed', db.label, 'r09-connection-killed.spec.ts', {
        rounds: ROUNDS,
        ttlMs: TTL,
        renewalIntervalMs: TTL / 3,
        sessionsKilled: killed,
        lockKept: `${kept}/${ROUNDS}`,
        lossSignalledWithinRenewal: `${lostInTime}/${ROUNDS}`,
        lossSignalledLate: lostLate,
        detectionP50Ms: detectMs.length ? round(percentile(detectMs, 50)) : 'no loss',
        waitThroughKill: countBy(waitOutcomes),
        laterAcquiresSucceeded: `${later}/${laterTotal}`,
        anomalies: report.anomalies.length,
      });
      if (report.anomalies.length > 0) throw new Error(describeAnomalies(report));
      expect(lostLate).toBe(0);
      expect(kept + lostInTime).toBe(ROUNDS);
      expect(later).toBe(laterTotal);
    }, 180_000);
  },
);

function countBy(values: string[]): string {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  return [...counts].map(([k, n]) => `${k} ${n}/${values.length}`).join(', ');
}
