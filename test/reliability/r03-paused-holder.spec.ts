import { testDatabases } from '../support/databases';
import { Agent, stopAll } from './support/agent';
import { FULL, recordFigures } from './support/figures';
import { checkHistory, clockSlackMs, describeAnomalies } from './support/history';
import { ReliabilityDb } from './support/reliability-db';

// R3 paused holder, R7 owner-only release, R8 renewal never steals. Holder A (ttl 2 s)
// claims the fence-checking store and is stopped (SIGSTOP) for 3 × ttl; B takes the lock
// and writes; A resumes: its late heartbeat, write, unlock and extend must all fail.
const ROUNDS = FULL ? 5 : 3;
const TTL = 2_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(testDatabases())('R3/R7/R8 paused holder on $label', (db) => {
  let rdb: ReliabilityDb;
  const agents: Agent[] = [];
  beforeAll(async () => {
    rdb = await ReliabilityDb.open(db);
  });
  afterAll(async () => {
    await stopAll(agents);
    await rdb?.close();
  });

  it(`rejects the stale writes, unlocks and extends of ${ROUNDS} paused holders`, async () => {
    const started = await Promise.all(
      Array.from({ length: ROUNDS + 1 }, (_, i) =>
        Agent.start(rdb.childConfig({ eventsFile: rdb.eventsFile(`agent-${i}`) })),
      ),
    );
    agents.push(...started);
    const b = started[0];
    const holders = started.slice(1);
    const names = holders.map((_, i) => `r3:${i}`);
    for (const name of names) await rdb.seed(name, 'initial');

    const aLocks = await Promise.all(
      holders.map((a, i) => a.call('lock', { name: names[i], timeoutMs: 5_000, ttlMs: TTL })),
    );
    for (const [i, a] of holders.entries()) {
      expect(
        (await a.call('storeRead', { handle: aLocks[i].handle, table: rdb.kvTable, key: names[i] }))
          .read,
      ).toEqual({ value: 'initial' });
    }
    for (const a of holders) a.signal('SIGSTOP');
    await sleep(3 * TTL);

    const bLocks = [];
    for (const name of names) {
      const lock = await b.call('lock', { name, timeoutMs: 5_000, ttlMs: 30_000 });
      expect(lock.error).toBeUndefined();
      bLocks.push(lock);
      expect(
        (await b.call('storeRead', { handle: lock.handle, table: rdb.kvTable, key: name })).read,
      ).toEqual({ value: 'initial' });
      expect(
        (
          await b.call('storeWrite', {
            handle: lock.handle,
            table: rdb.kvTable,
            key: name,
            value: 'B',
          })
        ).accepted,
      ).toBe(true);
    }
    const before = await Promise.all(names.map((name) => rdb.service.inspect(name)));
    for (const a of holders) a.signal('SIGCONT');
    await sleep(500); // A's overdue timers (renewal, lease deadline) fire now.

    let staleAccepted = 0;
    let lostOnUnlock = 0;
    let lostOnExtend = 0;
    let signalAborted = 0;
    let heartbeatRegained = 0;
    let rowChanged = 0;
    for (const [i, a] of holders.entries()) {
      const handle = aLocks[i].handle;
      // A's overdue timers fire on resume; allow a loaded machine up to 5 s to run them.
      let state = await a.call('state', { handle });
      for (let waited = 0; !state.aborted && waited < 5_000; waited += 100) {
        await sleep(100);
        state = await a.call('state', { handle });
      }
      if (state.aborted && state.reasonIsLockLost && !state.isHeld) signalAborted++;
      const afterHeartbeat = await rdb.service.inspect(names[i]);
      if (afterHeartbeat?.fence !== bLocks[i].fence || afterHeartbeat?.status !== 'held')
        heartbeatRegained++;
      const write = await a.call('storeWrite', {
        handle,
        table: rdb.kvTable,
        key: names[i],
        value: 'A',
      });
      if (write.accepted) staleAccepted++;
      if ((await a.call('unlock', { handle })).isLockLost) lostOnUnlock++;
      if ((await a.call('extend', { handle, ttlMs: TTL })).isLockLost) lostOnExtend++;
      const after = await rdb.service.inspect(names[i]);
      if (JSON.stringify(after) !== JSON.stringify(before[i])) rowChanged++;
    }
    const values = await Promise.all(names.map((name) => rdb.read(name)));

    // R7: B's double unlock is a no-op; the lock is then free.
    let doubleUnlockNoop = 0;
    for (const [i, lock] of bLocks.entries()) {
      const first = await b.call('unlock', { handle: lock.handle });
      const second = await b.call('unlock', { handle: lock.handle });
      const state = await rdb.service.inspect(names[i]);
      if (first.ok && second.ok && state?.status === 'free' && state.fence === lock.fence)
        doubleUnlockNoop++;
    }

    const report = checkHistory(rdb.readEvents(), { clockSlackMs: clockSlackMs(rdb.db.kind) });
    const takeoverSawLeaseExpired = bLocks.filter((l) => l.lastError?.isLeaseExpired).length;
    recordFigures(
      'R3',
      'paused holder (SIGSTOP past lease)',
      db.label,
      'r03-paused-holder.spec.ts',
      {
        rounds: ROUNDS,
        ttlMs: TTL,
        pausedMs: 3 * TTL,
        staleWritesAccepted: `${staleAccepted}/${ROUNDS}`,
        unlockReportedLost: `${lostOnUnlock}/${ROUNDS}`,
        extendReportedLost: `${lostOnExtend}/${ROUNDS}`,
        signalAborted: `${signalAborted}/${ROUNDS}`,
        nextHolderSawLeaseExpired: `${takeoverSawLeaseExpired}/${ROUNDS}`,
        overlapsAfterExpiry: report.overlapsAfterExpiry,
        anomalies: report.anomalies.length,
      },
    );
    recordFigures(
      'R7',
      'owner-only and idempotent release',
      db.label,
      'r03-paused-holder.spec.ts',
      {
        staleUnlockLockLostError: `${lostOnUnlock}/${ROUNDS}`,
        staleExtendLockLostError: `${lostOnExtend}/${ROUNDS}`,
        otherHoldersRowUnchanged: `${ROUNDS - rowChanged}/${ROUNDS}`,
        doubleUnlockNoop: `${doubleUnlockNoop}/${ROUNDS}`,
        anomalies: report.anomalies.length,
      },
    );
    recordFigures('R8', 'renewal never steals', db.label, 'r03-paused-holder.spec.ts', {
      lateHeartbeats: ROUNDS,
      oldHolderRegained: `${heartbeatRegained}/${ROUNDS}`,
      oldHolderSignalAborted: `${signalAborted}/${ROUNDS}`,
      anomalies: report.anomalies.length,
    });
    if (report.anomalies.length > 0) throw new Error(describeAnomalies(report));
    expect(staleAccepted).toBe(0);
    expect(values.map((v) => v.value)).toEqual(names.map(() => 'B'));
    expect(lostOnUnlock).toBe(ROUNDS);
    expect(lostOnExtend).toBe(ROUNDS);
    expect(signalAborted).toBe(ROUNDS);
    expect(heartbeatRegained).toBe(0);
    expect(rowChanged).toBe(0);
    expect(doubleUnlockNoop).toBe(ROUNDS);
    expect(takeoverSawLeaseExpired).toBe(ROUNDS);
  }, 120_000);
});
