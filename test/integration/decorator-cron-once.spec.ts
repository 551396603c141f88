import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createTestApp } from '../support/app';
import { testDatabases, uniqueTableName, type TestDatabase } from '../support/databases';

// Issue 15: three replicas on one schedule (@Cron every second, a 20 ms job), one whose
// timer fires 300 ms late, one whose wall clock is 2 s off. With
// `@WithRemoteLock(name, { onLocked: 'skip', oncePer: '1s' })` every tick (period of the
// database clock) runs at most once, even though the late replica finds the lock free.
// Set RLOCK_CRON_BASELINE=1 to also measure the same setup without oncePer (onLocked:
// 'skip' only) and print its double runs; that figure is not asserted.

interface Stats {
  pid: number;
  ticks: number;
  runs: number;
  skipped: number;
  failures: string[];
}

interface Worker {
  role: string;
  child: ChildProcess;
  output: () => string;
}

const PERIOD_MS = 1_000;
const JOB_MS = 20;
const LATE_TIMER_MS = 300;
const CLOCK_OFFSET_MS = 2_000;
const TICKS = 30;
const FAKE_CLOCK = join(__dirname, '../reliability/workers/fake-clock.js');
const WORKER = join(__dirname, '../support/cron-tick-worker.js');

/** Starts a worker; resolves once it printed "ready". Collects its output. */
function startWorker(
  role: string,
  config: object,
  extra: { execArgv?: string[]; env?: NodeJS.ProcessEnv } = {},
): Promise<Worker> {
  const child = fork(WORKER, [JSON.stringify(config)], {
    silent: true,
    execArgv: extra.execArgv ?? [],
    env: { ...process.env, ...extra.env },
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (chunk) => (out += String(chunk)));
  child.stderr!.on('data', (chunk) => (err += String(chunk)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${role} worker not ready: ${err}`)), 20_000);
    const check = () => {
      if (!/^ready$/m.test(out)) return;
      clearTimeout(timer);
      child.stdout!.off('data', check);
      resolve({ role, child, output: () => out });
    };
    child.stdout!.on('data', check);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${role} worker exited with ${code}: ${err}`));
    });
  });
}

/** Asks a worker to stop; resolves with its stats once it exited with 0. */
function stopWorker(worker: Worker): Promise<Stats & { role: string }> {
  return new Promise((resolve, reject) => {
    worker.child.removeAllListeners('exit');
    const exited = (code: number | null) => {
      const line = worker.output().match(/^stats (.*)$/m);
      if (code === 0 && line) resolve({ role: worker.role, ...(JSON.parse(line[1]) as Stats) });
      else reject(new Error(`${worker.role} worker exited with ${code}: ${worker.output()}`));
    };
    if (worker.child.exitCode !== null) return exited(worker.child.exitCode);
    worker.child.on('exit', exited);
    worker.child.send('stop');
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What one run of the three replicas gave. */
interface Outcome {
  /** Runs per tick of the window (period start in ms → runs); 0 for a tick nobody ran. */
  runsPerTick: Map<number, number>;
  /** Runs whose recorded period start (lastTickAt) is not floor(grant / period) * period. */
  misrecorded: number;
  /** Whether each replica was still running at the end of the window. */
  alive: boolean[];
  stats: (Stats & { role: string })[];
}

/**
 * Runs the three replicas with `lockOptions` for TICKS full periods and collects the runs
 * of those periods. The window is read on this process's clock: the databases are on this
 * host, so their clock is the same one.
 */
async function runReplicas(db: TestDatabase, lockOptions: object): Promise<Outcome> {
  const tableName = uniqueTableName('rlock_once');
  const runsTable = uniqueTableName('once_runs');
  const app = await createTestApp(db, { tableName }); // creates the lock table once
  const workers: Worker[] = [];
  try {
    await app.dataSource.query(
      `CREATE TABLE ${runsTable} (pid integer NOT NULL, tick_ms bigint NOT NULL, acquired_ms bigint NOT NULL, last_tick_ms bigint NULL)`,
    );
    const config = {
      kind: db.kind,
      url: db.url,
      tableName,
      runsTable,
      lockName: `cron:once:${runsTable}`,
      jobMs: JOB_MS,
      periodMs: PERIOD_MS,
      lockOptions,
    };
    const started = await Promise.allSettled([
      startWorker('on time', { ...config, delayMs: 0 }),
      startWorker('late timer', { ...config, delayMs: LATE_TIMER_MS }),
      startWorker(
        'skewed clock',
        { ...config, delayMs: 0 },
        {
          execArgv: ['-r', FAKE_CLOCK],
          env: { RLOCK_FAKE_CLOCK_OFFSET_MS: String(CLOCK_OFFSET_MS) },
        },
      ),
    ]);
    for (const result of started) if (result.status === 'fulfilled') workers.push(result.value);
    for (const result of started) if (result.status === 'rejected') throw result.reason;

    for (const worker of workers) worker.child.send('start');
    // The first tick every replica surely fires is the one after the next; the window ends
    // once its last tick had time to run (late timer, the job, a slow database).
    const windowStart = (Math.floor(Date.now() / PERIOD_MS) + 2) * PERIOD_MS;
    await sleep(windowStart + TICKS * PERIOD_MS + LATE_TIMER_MS + 1_200 - Date.now());
    const alive = workers.map((worker) => worker.child.exitCode === null);
    const stats = await Promise.all(workers.splice(0).map(stopWorker));
    const rows: Record<string, unknown>[] = await app.dataSource.query(
      `SELECT pid, tick_ms, acquired_ms, last_tick_ms FROM ${runsTable}`,
    );

    const runsPerTick = new Map<number, number>();
    for (let i = 0; i < TICKS; i++) runsPerTick.set(windowStart + i * PERIOD_MS, 0);
    let misrecorded = 0;
    for (const row of rows) {
      const tick = Number(row.tick_ms);
      if (runsPerTick.has(tick)) runsPerTick.set(tick, runsPerTick.get(tick)! + 1);
      if (row.last_tick_ms !== null && Number(row.last_tick_ms) !== tick) misrecorded++;
    }
    return { runsPerTick, misrecorded, alive, stats };
  } finally {
    for (const worker of workers) worker.child.kill('SIGKILL'); // only after a failure
    await app.dataSource.query(`DROP TABLE IF EXISTS ${runsTable}`).catch(() => undefined);
    await app.close();
  }
}

/** "ticks 30, ran 30, nobody ran 0, ran twice 0 (runs 30)" and the replicas' counts. */
function describeOutcome(outcome: Outcome): string {
  const counts = [...outcome.runsPerTick.values()];
  const ran = counts.filter((runs) => runs > 0).length;
  const doubles = counts.reduce((sum, runs) => sum + Math.max(0, runs - 1), 0);
  const replicas = outcome.stats
    .map((s) => `${s.role}: ticks ${s.ticks} runs ${s.runs} skipped ${s.skipped}`)
    .join('; ');
  return (
    `ticks ${counts.length}, ran ${ran}, nobody ran ${counts.length - ran}, ` +
    `double runs ${doubles} (runs ${counts.reduce((a, b) => a + b, 0)}) — ${replicas}`
  );
}

describe.each(testDatabases())('@Cron + @WithRemoteLock once per tick on $label', (db) => {
  it(`runs every tick at most once across three replicas with oncePer (a timer ${LATE_TIMER_MS} ms late, a clock ${CLOCK_OFFSET_MS} ms off)`, async () => {
    const outcome = await runReplicas(db, { onLocked: 'skip', oncePer: '1s' });
    process.stdout.write(
      `[decorator-cron-once] ${db.label} oncePer: ${describeOutcome(outcome)}\n`,
    );

    expect(outcome.alive).toEqual([true, true, true]);
    for (const s of outcome.stats) {
      expect(s.failures).toEqual([]);
      expect(s.runs + s.skipped).toBe(s.ticks);
      expect(s.ticks).toBeGreaterThan(TICKS / 2); // every replica took part
    }
    const counts = [...outcome.runsPerTick.values()];
    expect(counts.filter((runs) => runs > 1)).toEqual([]); // no tick ran twice
    expect(outcome.misrecorded).toBe(0); // the recorded tick is the grant's period
    // A tick nobody ran needs every replica to miss it (a stalled host); most ran.
    expect(counts.filter((runs) => runs === 1).length).toBeGreaterThan(TICKS / 2);
  }, 90_000);

  (process.env.RLOCK_CRON_BASELINE === '1' ? it : it.skip)(
    "baseline: the same replicas with onLocked: 'skip' only (double runs printed, not asserted)",
    async () => {
      const outcome = await runReplicas(db, { onLocked: 'skip' });
      process.stdout.write(
        `[decorator-cron-once] ${db.label} baseline: ${describeOutcome(outcome)}\n`,
      );
      expect(outcome.alive).toEqual([true, true, true]);
      for (const s of outcome.stats) expect(s.failures).toEqual([]);
    },
    90_000,
  );
});
