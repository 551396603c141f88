import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { databaseLabel } from '../app/database.options';
import { DemoScenario } from './demo-scenario';
import { summarize, type DemoSummary, type ResourceRecord } from './demo-summary';
import { DEMO_USAGE, parseDemoOptions, type DemoOptions } from './demo.options';
import { Reporter } from './reporter';
import { SampleInstance } from './sample-instance';

/**
 * `npm start`: several instances of the sample app as separate processes on one
 * database, racing for the same resources; prints what happens and checks the claims.
 */
async function main(): Promise<number> {
  let parsed: DemoOptions | 'help';
  try {
    parsed = parseDemoOptions(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${DEMO_USAGE}`);
    return 2;
  }
  if (parsed === 'help') {
    process.stdout.write(DEMO_USAGE);
    return 0;
  }
  const options = parsed;
  const workDir = mkdtempSync(join(tmpdir(), 'rlock-demo-'));
  const url = options.databaseUrl ?? join(workDir, 'demo.sqlite');
  const database = databaseLabel(url);
  const onServer = database !== 'SQLite';
  // On a shared server, the demo's tables get a prefix of their own and are dropped at the end.
  const tablePrefix = onServer ? `demo_${randomBytes(3).toString('hex')}_` : '';
  const acquireTimeoutMs = Math.max(15_000, 3 * options.ttlMs + 6 * options.workMs);
  const reporter = new Reporter(options.progress);

  reporter.plain(
    `nestjs-rlock demo: ${options.instances} instances of sample/ as separate processes on one ${database} database` +
      (onServer ? ` (tables ${tablePrefix}*)` : ` (${url})`),
  );
  reporter.plain(
    `  lock lease ${options.ttlMs} ms, acquire timeout ${acquireTimeoutMs} ms, building a resource takes ${options.workMs} ms; ` +
      `instance logs in ${workDir}`,
  );
  reporter.plain();

  const env = {
    DATABASE_URL: url,
    SAMPLE_TABLE_PREFIX: tablePrefix,
    SAMPLE_TTL_MS: String(options.ttlMs),
    SAMPLE_WORK_MS: String(options.workMs),
    SAMPLE_ACQUIRE_TIMEOUT_MS: String(acquireTimeoutMs),
  };
  const instances = Array.from(
    { length: options.instances },
    (_, i) => new SampleInstance(`i${i + 1}`, env, join(workDir, `i${i + 1}.log`)),
  );
  const stopAll = () => Promise.all(instances.map((instance) => instance.stop()));
  const interrupt = () => void stopAll().then(() => process.exit(130));
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);

  const started = Date.now();
  let summary: DemoSummary;
  try {
    // The first instance creates the tables; the others start together once they exist.
    const start = async (instance: SampleInstance) => {
      await instance.start();
      reporter.event(`${instance.name} is up (pid ${instance.pid})`);
    };
    await start(instances[0]);
    await Promise.all(instances.slice(1).map(start));

    const scenario = new DemoScenario(instances, reporter, {
      workMs: options.workMs,
      ttlMs: options.ttlMs,
      durationMs: options.durationMs,
      requestTimeoutMs: acquireTimeoutMs + 15_000,
    });
    await scenario.run();
    const listed = await instances[0].request('GET', '/resources', 10_000);
    summary = summarize({
      database,
      instances: instances.map((instance) => instance.name),
      elapsedMs: Date.now() - started,
      ttlMs: options.ttlMs,
      records: scenario.records,
      resources: (listed.body ?? []) as ResourceRecord[],
      auditRuns: scenario.auditRuns,
      kill: scenario.kill,
    });
  } finally {
    await stopAll();
    if (onServer && !options.keepTables) await dropTables(url, tablePrefix);
  }

  reporter.plain();
  reporter.plain(
    `Summary (${database}, ${summary.instances} instances, ${(summary.elapsedMs / 1000).toFixed(1)} s):`,
  );
  for (const claim of summary.claims) reporter.plain(`  ${claim.ok ? '✔' : '✘'} ${claim.text}`);
  if (summary.handovers.length > 0) {
    reporter.plain("  Requests that found a previous holder's error on the lock:");
    for (const h of summary.handovers) {
      reporter.plain(`    ${h.instance} ${h.resource}: ${h.previous} → ${h.did}`);
    }
  }
  reporter.plain(summary.ok ? 'Every claim holds.' : 'SOME CLAIMS FAILED (see ✘ above).');
  if (options.summaryFile) writeFileSync(options.summaryFile, JSON.stringify(summary, null, 2));
  return summary.ok ? 0 : 1;
}

async function dropTables(url: string, prefix: string): Promise<void> {
  const postgres = databaseLabel(url) === 'PostgreSQL';
  const source = new DataSource(
    postgres
      ? { type: 'postgres', url }
      : { type: 'mariadb', url: url.replace(/^mariadb:/, 'mysql:') },
  );
  await source.initialize();
  try {
    for (const table of ['resources', 'audit_runs', 'rlock']) {
      await source.query(`DROP TABLE IF EXISTS ${prefix}${table}`);
    }
  } finally {
    await source.destroy();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(
      `The demo failed: ${error instanceof Error ? error.stack : String(error)}\n`,
    );
    process.exit(1);
  },
);
