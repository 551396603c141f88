import { testDatabases } from '../support/databases';
import { Agent, stopAll } from './support/agent';
import { FULL, percentile, recordFigures, round } from './support/figures';
import { checkHistory, clockSlackMs, describeAnomalies } from './support/history';
import { ReliabilityDb } from './support/reliability-db';

// R5: two processes pass one lock back and forth; each release leaves an error (a
// registered class with code and a field), nothing, or an explicit null. The next holder
// must see exactly that.
const ROUNDS = FULL ? 60 : 15;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(testDatabases())('R5 hand-off with state on $label', (db) => {
  let rdb: ReliabilityDb;
  const agents: Agent[] = [];
  beforeAll(async () => {
    rdb = await ReliabilityDb.open(db);
  });
  afterAll(async () => {
    await stopAll(agents);
    await rdb?.close();
  });

  it(`hands over the outcome exactly in ${ROUNDS} rounds`, async () => {
    const pair = await Promise.all(
      [0, 1].map((i) => Agent.start(rdb.childConfig({ eventsFile: rdb.eventsFile(`agent-${i}`) }))),
    );
    agents.push(...pair);
    const name = 'r5';
    let holder = (await pair[0].call('lock', { name, timeoutMs: 5_000 })).handle;
    let exact = 0;
    const latencies: number[] = [];
    const mismatches: unknown[] = [];
    for (let k = 0; k < ROUNDS; k++) {
      const [from, to] = k % 2 === 0 ? [pair[0], pair[1]] : [pair[1], pair[0]];
      const waiting = to.call('lock', { name, timeoutMs: 10_000 });
      await sleep(30);
      const kind = k % 3;
      const error =
        kind === 0
          ? {
              kind: 'payment',
              message: `card declined ${k}`,
              code: `E_PAY_${k}`,
              retryable: k % 2 === 0,
            }
          : kind === 1
            ? undefined
            : { kind: 'null' };
      const released = await from.call('unlock', { handle: holder, error });
      const next = await waiting;
      expect(released.ok).toBe(true);
      expect(next.error).toBeUndefined();
      latencies.push((Number(next.grantHr) - Number(released.unlockHr)) / 1e6);
      const got = next.lastError;
      const ok =
        kind === 0
          ? got?.isPaymentFailed === true &&
            got.message === `card declined ${k}` &&
            got.code === `E_PAY_${k}` &&
            got.fields?.retryable === (k % 2 === 0)
          : got === null;
      if (ok) exact++;
      else mismatches.push({ round: k, sent: error, got });
      holder = next.handle;
    }
    const report = checkHistory(rdb.readEvents(), { clockSlackMs: clockSlackMs(rdb.db.kind) });
    recordFigures('R5', 'hand-off with state', db.label, 'r05-handoff.spec.ts', {
      rounds: ROUNDS,
      outcomeSeenExactly: `${exact}/${ROUNDS}`,
      handoffP50Ms: round(percentile(latencies, 50)),
      handoffP99Ms: round(percentile(latencies, 99)),
      anomalies: report.anomalies.length,
    });
    if (report.anomalies.length > 0) throw new Error(describeAnomalies(report));
    expect(mismatches).toEqual([]);
  }, 120_000);
});
