import { testDatabases } from '../support/databases';
import { Agent, stopAll } from './support/agent';
import { FULL, percentile, recordFigures, round } from './support/figures';
import { checkHistory, clockSlackMs, describeAnomalies } from './support/history';
import { ReliabilityDb } from './support/reliability-db';

// R4: holders are killed with SIGKILL while one waiter waits for each of their locks;
// the waiter takes over when the lease runs out and is told the previous holder vanished.
const ROUNDS = FULL ? 10 : 5;
const TTL = 1_000;
const BACKOFF_MAX = 200;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(testDatabases())('R4 crashed holder on $label', (db) => {
  let rdb: ReliabilityDb;
  const agents: Agent[] = [];
  beforeAll(async () => {
    rdb = await ReliabilityDb.open(db);
  });
  afterAll(async () => {
    await stopAll(agents);
    await rdb?.close();
  });

  it(`hands the lock of ${ROUNDS} killed holders to the waiter after the lease`, async () => {
    const started = await Promise.all(
      Array.from({ length: ROUNDS + 1 }, (_, i) =>
        Agent.start(rdb.childConfig({ eventsFile: rdb.eventsFile(`agent-${i}`) })),
      ),
    );
    agents.push(...started);
    const [waiter, ...holders] = started;
    const names = holders.map((_, i) => `r4:${i}`);
    await Promise.all(
      holders.map((h, i) => h.call('lock', { name: names[i], timeoutMs: 5_000, ttlMs: TTL })),
    );
    const waits = names.map((name) =>
      waiter.call('lock', { name, timeoutMs: 30_000, ttlMs: 30_000 }),
    );
    await sleep(300);
    const killedAt: number[] = [];
    for (const holder of holders) {
      holder.signal('SIGKILL');
      killedAt.push(Number(process.hrtime.bigint()));
      await sleep(150);
    }
    const grants = await Promise.all(waits);
    const takeoverMs = grants.map((g, i) => (Number(g.grantHr) - killedAt[i]) / 1e6);
    const sawLeaseExpired = grants.filter((g) => g.lastError?.isLeaseExpired === true).length;
    const report = checkHistory(rdb.readEvents(), { clockSlackMs: clockSlackMs(rdb.db.kind) });
    const bound = TTL + BACKOFF_MAX;
    recordFigures('R4', 'crashed holder (SIGKILL)', db.label, 'r04-crashed-holder.spec.ts', {
      rounds: ROUNDS,
      ttlMs: TTL,
      takeoverP50Ms: round(percentile(takeoverMs, 50)),
      takeoverP99Ms: round(percentile(takeoverMs, 99)),
      takeoverMaxMs: round(Math.max(...takeoverMs)),
      goalMs: `≤ ttl + one poll (${bound}) + 2 round trips`,
      lastErrorLeaseExpired: `${sawLeaseExpired}/${ROUNDS}`,
      anomalies: report.anomalies.length,
    });
    if (report.anomalies.length > 0) throw new Error(describeAnomalies(report));
    expect(grants.every((g) => g.error === undefined)).toBe(true);
    expect(sawLeaseExpired).toBe(ROUNDS);
    // Generous correctness bound (2 shared cores): never more than ttl + poll + 1 s.
    expect(Math.max(...takeoverMs)).toBeLessThan(bound + 1_000);
  }, 120_000);
});
