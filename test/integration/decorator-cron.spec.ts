import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createTestApp } from '../support/app';
import { testDatabases, uniqueTableName } from '../support/databases';

interface Stats {
  pid: number;
  ticks: number;
  runs: number;
  skipped: number;
  failures: string[];
}

interface Run {
  pid: number;
  started: number;
  ended: number;
}

const JOB_MS = 1_500; // longer than the one-second period of the job
const WINDOW_MS = 6_000;

/** Starts a worker; resolves once it printed "ready". Collects its output. */
function startWorker(config: object): Promise<{ child: ChildProcess; output: () => string }> {
  const child = fork(join(__dirname, '../support/cron-worker.js'), [JSON.stringify(config)], {
    silent: true,
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (chunk) => (out += String(chunk)));
  child.stderr!.on('data', (chunk) => (err += String(chunk)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker not ready: ${err}`)), 20_000);
    const check = () => {
      if (!/^ready$/m.test(out)) return;
      clearTimeout(timer);
      child.stdout!.off('data', check);
      resolve({ child, output: () => out });
    };
    child.stdout!.on('data', check);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`worker exited with ${code}: ${err}`));
    });
  });
}

/** Asks a worker to stop; resolves with its stats once it exited with 0. */
function stopWorker(worker: { child: ChildProcess; output: () => string }): Promise<Stats> {
  return new Promise((resolve, reject) => {
    worker.child.removeAllListeners('exit');
    worker.child.on('exit', (code) => {
      const line = worker.output().match(/^stats (.*)$/m);
      if (code === 0 && line) resolve(JSON.parse(line[1]) as Stats);
      else reject(new Error(`worker exited with ${code}: ${worker.output()}`));
    });
    worker.child.send('stop');
  });
}

describe.each(testDatabases())(
  '@Cron + @WithRemoteLock singleton across processes on $label',
  (db) => {
    it("runs a job at most once at a time across two processes with onLocked: 'skip'", async () => {
      const tableName = uniqueTableName('rlock_cron');
      const runsTable = uniqueTableName('cron_runs');
      const app = await createTestApp(db, { tableName }); // creates the lock table once
      await app.dataSource.query(
        `CREATE TABLE ${runsTable} (pid integer NOT NULL, started_us bigint NOT NULL, ended_us bigint NOT NULL)`,
      );
      const config = {
        kind: db.kind,
        url: db.url,
        tableName,
        runsTable,
        lockName: `cron:singleton:${runsTable}`,
        jobMs: JOB_MS,
      };
      const workers = await Promise.all([startWorker(config), startWorker(config)]);
      await new Promise((resolve) => setTimeout(resolve, WINDOW_MS));
      const alive = workers.map((worker) => worker.child.exitCode === null);
      const stats = await Promise.all(workers.map(stopWorker));
      expect(alive).toEqual([true, true]);
      const rows: Record<string, unknown>[] = await app.dataSource.query(
        `SELECT pid, started_us, ended_us FROM ${runsTable}`,
      );
      await app.dataSource.query(`DROP TABLE ${runsTable}`);
      await app.close();

      const runs: Run[] = rows
        .map((row) => ({
          pid: Number(row.pid),
          started: Number(row.started_us),
          ended: Number(row.ended_us),
        }))
        .sort((a, b) => a.started - b.started);
      for (let i = 1; i < runs.length; i++) {
        expect(runs[i].started).toBeGreaterThanOrEqual(runs[i - 1].ended); // no two runs overlap
      }
      // Every tick of each process either ran or skipped; nothing failed.
      for (const s of stats) {
        expect(s.failures).toEqual([]);
        expect(s.ticks).toBeGreaterThanOrEqual(3);
        expect(s.runs + s.skipped).toBe(s.ticks);
      }
      const total = stats.reduce((sum, s) => sum + s.runs, 0);
      expect(runs).toHaveLength(total);
      expect(total).toBeGreaterThanOrEqual(2);
      expect(stats.reduce((sum, s) => sum + s.skipped, 0)).toBeGreaterThan(0);
      process.stdout.write(
        `[decorator-cron] ${db.label}: ${stats.map((s) => `pid ${s.pid} ticks ${s.ticks} runs ${s.runs} skipped ${s.skipped}`).join('; ')}; overlaps 0\n`,
      );
    }, 40_000);
  },
);
