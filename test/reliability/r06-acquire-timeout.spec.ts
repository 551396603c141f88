import { createHash } from 'node:crypto';
import { testDatabases } from '../support/databases';
import { Agent, stopAll } from './support/agent';
import { FULL, percentile, recordFigures, round } from './support/figures';
import { ReliabilityDb } from './support/reliability-db';

// R6: waiters with a 200 ms acquire timeout against a held lock, one at a time and 200 at
// once, must fail with AcquireTimeoutError after 200 ms (plus at most a poll and a round
// trip), and none of them may end up owning the lock or leave its place in line behind.
const TIMEOUT = 200;
const SINGLE = FULL ? 50 : 20;
const STORM = 200;
const POLL = 200;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(testDatabases())('R6 acquire timeout accuracy on $label', (db) => {
  let rdb: ReliabilityDb;
  const agents: Agent[] = [];
  beforeAll(async () => {
    rdb = await ReliabilityDb.open(db);
  });
  afterAll(async () => {
    await stopAll(agents);
    await rdb?.close();
  });

  it('times out within [200 ms, 200 ms + poll + RTT], alone and 200 at once', async () => {
    const [holder, waiter] = await Promise.all([0, 1].map(() => Agent.start(rdb.childConfig())));
    agents.push(holder, waiter);
    const name = 'r6';
    const held = await holder.call('lock', { name, timeoutMs: 5_000, ttlMs: 30_000 });
    const single: number[] = [];
    const errors: string[] = [];
    for (let i = 0; i < SINGLE; i++) {
      const result = await waiter.call('lock', { name, timeoutMs: TIMEOUT });
      single.push(result.elapsedMs);
      errors.push(result.error?.class ?? 'granted');
    }
    const storm = (await waiter.call('lockMany', { name, timeoutMs: TIMEOUT, count: STORM }))
      .results as Array<{
      error?: { class: string };
      elapsedMs: number;
    }>;
    for (const r of storm) errors.push(r.error?.class ?? 'granted');
    const stormMs = storm.map((r) => r.elapsedMs);
    const stateHeld = await rdb.service.inspect(name);
    await holder.call('unlock', { handle: held.handle });
    await sleep(POLL + 100);
    const stateAfter = await rdb.service.inspect(name);
    // Every waiter gave up: none may have left its place in the lock's line behind (the
    // line of the lock's key, the SHA-256 of its name: the waiters table holds other rows).
    const key = createHash('sha256').update(name, 'utf8').digest('hex');
    const placesLeft = Number(
      (await rdb.exec(`SELECT count(*) AS n FROM ${rdb.table}_waiters WHERE lock_id = ?`, [key]))
        .records[0].n,
    );
    const ownedByTimedOut =
      stateHeld?.fence !== held.fence ||
      stateAfter?.status !== 'free' ||
      stateAfter.fence !== held.fence
        ? 1
        : 0;
    const typed = errors.filter((e) => e === 'AcquireTimeoutError').length;
    const all = [...single, ...stormMs];
    recordFigures('R6', 'acquire timeout accuracy', db.label, 'r06-acquire-timeout.spec.ts', {
      timeoutMs: TIMEOUT,
      singleMinMs: round(Math.min(...single)),
      singleP50Ms: round(percentile(single, 50)),
      singleP99Ms: round(percentile(single, 99)),
      storm: STORM,
      stormMinMs: round(Math.min(...stormMs)),
      stormP50Ms: round(percentile(stormMs, 50)),
      stormP99Ms: round(percentile(stormMs, 99)),
      acquireTimeoutErrors: `${typed}/${errors.length}`,
      rowsOwnedByTimedOutWaiters: ownedByTimedOut,
      placesLeftByTimedOutWaiters: placesLeft,
    });
    expect(typed).toBe(errors.length);
    expect(Math.min(...all)).toBeGreaterThanOrEqual(TIMEOUT - 1);
    // Generous correctness bound on 2 shared cores: timeout + poll + 1 s.
    expect(Math.max(...all)).toBeLessThan(TIMEOUT + POLL + 1_000);
    expect(ownedByTimedOut).toBe(0);
    expect(placesLeft).toBe(0);
  }, 120_000);
});
