import { testDatabases } from '../support/databases';
import { Agent, stopAll } from './support/agent';
import { startContenders } from './support/contention';
import { FULL, percentile, recordFigures, round } from './support/figures';
import { checkHistory, clockSlackMs, describeAnomalies } from './support/history';
import { ReliabilityDb } from './support/reliability-db';

// R11: processes whose wall clock is an hour ahead or behind, and jumping by up to ±10
// minutes four times a second (a preloaded fake Date), contend for one lock and take over
// from a killed holder. The database clock decides: no overlap, takeover time unchanged.
const ITERATIONS = FULL ? 300 : 100;
const TTL = 1_000;
const BACKOFF_MAX = 200;
const HOUR = 3_600_000;
const JUMP = 600_000;
const CLOCKS = [
  { offsetMs: HOUR, jumpMs: JUMP },
  { offsetMs: -HOUR, jumpMs: JUMP },
  { offsetMs: HOUR },
  { offsetMs: -HOUR },
];
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(testDatabases())('R11 application clock skew on $label', (db) => {
  let rdb: ReliabilityDb;
  const agents: Agent[] = [];
  beforeAll(async () => {
    rdb = await ReliabilityDb.open(db);
  });
  afterAll(async () => {
    await stopAll(agents);
    await rdb?.close();
  });

  it('keeps mutual exclusion and takeover time with clocks ±1 h and jumping', async () => {
    const contenders = await startContenders(rdb, [
      {
        name: 'r11',
        processes: CLOCKS.length,
        iterations: ITERATIONS,
        counterKey: 'r11',
        ttlMs: TTL,
        timeoutMs: 120_000,
        clocks: CLOCKS,
      },
    ]);
    await Promise.all(contenders.map((c) => c.done));
    const events = rdb.readEvents();
    const grants = events.filter((e) => e.e === 'grant');
    const skewMs = grants.map((g) => Math.abs((g.appNow as number) - g.dbAt!));
    const counter = Number((await rdb.read('r11')).value);

    // Takeover: a holder whose clock runs an hour ahead is killed; a waiter whose clock
    // runs an hour behind (and jumps) takes over.
    const rounds = FULL ? 5 : 3;
    const [waiter, ...holders] = await Promise.all([
      Agent.start(rdb.childConfig({ eventsFile: rdb.eventsFile('waiter') }), {
        offsetMs: -HOUR,
        jumpMs: JUMP,
      }),
      ...Array.from({ length: rounds }, (_, i) =>
        Agent.start(rdb.childConfig({ eventsFile: rdb.eventsFile(`holder-${i}`) }), {
          offsetMs: HOUR,
          jumpMs: JUMP,
        }),
      ),
    ]);
    agents.push(waiter, ...holders);
    const names = holders.map((_, i) => `r11:takeover:${i}`);
    await Promise.all(
      holders.map((h, i) => h.call('lock', { name: names[i], timeoutMs: 5_000, ttlMs: TTL })),
    );
    const waits = names.map((name) => waiter.call('lock', { name, timeoutMs: 30_000 }));
    await sleep(300);
    const killedAt: number[] = [];
    for (const h of holders) {
      h.signal('SIGKILL');
      killedAt.push(Number(process.hrtime.bigint()));
      await sleep(150);
    }
    const taken = await Promise.all(waits);
    const takeoverMs = taken.map((g, i) => (Number(g.grantHr) - killedAt[i]) / 1e6);
    const report = checkHistory(rdb.readEvents(), { clockSlackMs: clockSlackMs(rdb.db.kind) });
    recordFigures('R11', 'application clock skew', db.label, 'r11-clock-skew.spec.ts', {
      processes: `${CLOCKS.length} (+1 h jumping, −1 h jumping, +1 h, −1 h; jumps ±10 min every 250 ms)`,
      acquisitions: grants.length,
      appClockSkewMinMs: Math.min(...skewMs),
      overlaps: report.overlaps,
      lostIncrements: CLOCKS.length * ITERATIONS - counter,
      takeoverP50Ms: round(percentile(takeoverMs, 50)),
      takeoverMaxMs: round(Math.max(...takeoverMs)),
      takeoverGoalMs: `≤ ttl ${TTL} + poll ${BACKOFF_MAX} + 2 RTT (as R4)`,
      anomalies: report.anomalies.length,
    });
    if (report.anomalies.length > 0) throw new Error(describeAnomalies(report));
    expect(Math.min(...skewMs)).toBeGreaterThan(HOUR - JUMP - 60_000);
    expect(report.overlaps).toBe(0);
    expect(counter).toBe(CLOCKS.length * ITERATIONS);
    expect(taken.every((t) => t.error === undefined && t.lastError?.isLeaseExpired)).toBe(true);
    expect(Math.max(...takeoverMs)).toBeLessThan(TTL + BACKOFF_MAX + 1_000);
  }, 180_000);
});
