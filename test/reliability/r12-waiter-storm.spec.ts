import { testDatabases } from '../support/databases';
import { Agent, stopAll } from './support/agent';
import { FULL, recordFigures, round } from './support/figures';
import { ReliabilityDb } from './support/reliability-db';

// R12: a thousand waiters (10 processes × 100) wait for one held lock for 10 s. Waiters
// of one process queue locally, so the database sees a few polls per process, and a
// sleeping waiter holds no connection.
const PROCESSES = FULL ? 10 : 4;
const PER_PROCESS = 100;
const WINDOW = FULL ? 10_000 : 5_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(testDatabases())('R12 waiter storm on $label', (db) => {
  let rdb: ReliabilityDb;
  const agents: Agent[] = [];
  beforeAll(async () => {
    rdb = await ReliabilityDb.open(db);
  });
  afterAll(async () => {
    await stopAll(agents);
    await rdb?.close();
  });

  it(`keeps ${PROCESSES} × ${PER_PROCESS} waiters cheap for ${WINDOW / 1000} s`, async () => {
    const holder = await Agent.start(rdb.childConfig());
    agents.push(holder);
    const storm = await Promise.all(
      Array.from({ length: PROCESSES }, () =>
        Agent.start(rdb.childConfig({ countQueries: true, poolSize: 2, appName: 'rlock-rel-r12' })),
      ),
    );
    agents.push(...storm);
    const name = 'r12';
    const held = await holder.call('lock', { name, timeoutMs: 5_000, ttlMs: 60_000 });
    const before = await Promise.all(storm.map((s) => s.call('queries')));
    const started = performance.now();
    const waits = storm.map((s) =>
      s.call('lockMany', { name, timeoutMs: WINDOW, count: PER_PROCESS }, WINDOW + 60_000),
    );
    let maxBusy = 0;
    let maxOpen = 0;
    const samples: number[] = [];
    while (performance.now() - started < WINDOW - 1_000) {
      await sleep(1_000);
      const ids = (await Promise.all(storm.map((s) => s.call('connectionIds')))).flatMap(
        (r) => r.ids as number[],
      );
      const { open, busy } = await rdb.busySessions(ids);
      maxBusy = Math.max(maxBusy, busy);
      maxOpen = Math.max(maxOpen, open);
      samples.push(busy);
    }
    const results = (await Promise.all(waits)).flatMap(
      (r) => r.results as Array<{ error?: { class: string } }>,
    );
    const seconds = (performance.now() - started) / 1000;
    const after = await Promise.all(storm.map((s) => s.call('queries')));
    const queries = after.reduce((sum, a, i) => sum + a.count - before[i].count, 0);
    const timedOut = results.filter((r) => r.error?.class === 'AcquireTimeoutError').length;
    const row = await rdb.service.inspect(name);
    await holder.call('unlock', { handle: held.handle });
    const server = db.kind !== 'sqlite';
    recordFigures('R12', 'waiter storm', db.label, 'r12-waiter-storm.spec.ts', {
      waiters: `${PROCESSES} processes × ${PER_PROCESS}`,
      windowS: WINDOW / 1000,
      queriesPerSecond: round(queries / seconds),
      queriesPerSecondPerProcess: round(queries / seconds / PROCESSES),
      connectionsOpenMax: server ? maxOpen : 'n/a (embedded)',
      connectionsPinnedBySleepingWaitersMax: server ? maxBusy : 'n/a (embedded)',
      timedOutWithAcquireTimeoutError: `${timedOut}/${results.length}`,
      holderKept: row?.fence === held.fence && row?.status === 'held',
    });
    expect(timedOut).toBe(PROCESSES * PER_PROCESS);
    expect(row?.fence).toBe(held.fence);
    expect(maxBusy).toBe(0);
    // Local queueing: one poller per process, backing off to at most 200 ms: ≤ ~10 q/s each.
    expect(queries / seconds / PROCESSES).toBeLessThan(20);
  }, 180_000);
});
