// `npm run bench`: measures nestjs-rlock against baselines taken in the same run, on SQLite
// and (when given URLs) PostgreSQL and MariaDB/MySQL, with one OS process per worker.
// Never part of `npm test`. Needs dist/ (npm run build). See BENCHMARKS.md.
const { rmSync, writeFileSync } = require('node:fs');
const { dirname } = require('node:path');
const { loadavg } = require('node:os');
const { snapshotDist } = require('./support/dist-snapshot');
const removeSnapshot = snapshotDist(!process.argv.includes('--no-build'));
const { parseOptions } = require('./support/options');
const { runWorkers } = require('./support/processes');
const { serverSampler, sampleWindow } = require('./support/server-stats');
const { contended } = require('./support/stats');
const { startApp, rlock } = require('./support/app');

const TABLE = 'rlock_bench';
const COUNTER = 'rlock_bench_counter';
const run = `r${process.pid}`;

const fmt = (n, digits = 0) =>
  Number.isFinite(n)
    ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : '—';
const ratio = (a, b) =>
  Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}×` : '—';

async function main() {
  const o = parseOptions(process.argv.slice(2));
  const lines = [];
  const print = (line = '') => {
    lines.push(line);
    process.stdout.write(line + '\n');
  };
  const load = () =>
    loadavg()
      .map((l) => l.toFixed(2))
      .join(' ');
  print(
    `# nestjs-rlock bench — ${new Date().toISOString()}, mode ${o.mode} (${o.seconds} s per row after ${o.warmup} s warm-up)`,
  );
  print(
    `Node ${process.version}, ${require('node:os').cpus().length} CPUs; load average at start: ${load()}`,
  );
  for (const db of o.databases) {
    const started = Date.now();
    print();
    print(`## ${db.label}`);
    print();
    print('| # | row | rlock | baseline | ratio | target | notes |');
    print('|---|---|---:|---:|---:|---|---|');
    await benchDatabase(db, o, (cells) => print(`| ${cells.join(' | ')} |`));
    print();
    print(
      `load average after ${db.label}: ${load()} (${Math.round((Date.now() - started) / 1000)} s)`,
    );
  }
  if (o.out) writeFileSync(o.out, lines.join('\n') + '\n');
  removeSnapshot();
  removeSqliteFiles(o);
}

/** Deletes the temporary SQLite database of this run. */
function removeSqliteFiles(o) {
  const sqlite = o.databases.find((db) => db.kind === 'sqlite');
  if (sqlite) rmSync(dirname(sqlite.url), { recursive: true, force: true });
}

async function benchDatabase(db, o, row) {
  const base = { kind: db.kind, url: db.url, table: TABLE, counterTable: COUNTER };
  await prepareTables(base);
  const sampler = await serverSampler(db);
  const timing = { warmup: o.warmup, seconds: o.seconds };
  const window = (during) => ({ ...timing, during });
  const serverRate = (from, until) => sampleWindow(sampler, from, until);
  const native =
    db.kind === 'sqlite'
      ? 'BEGIN IMMEDIATE'
      : db.kind === 'postgres'
        ? 'pg_advisory_lock'
        : 'GET_LOCK';
  try {
    if (o.sections.has(1)) {
      const { results } = await runWorkers(
        [{ ...base, role: 'compare', name: `${run}:u` }],
        timing,
      );
      const { rlock: lib, own, raw, native: nat } = results[0].perSecond;
      const { statements, unrecorded } = results[0].own;
      const count = statements.length === 2 ? 'two' : String(statements.length);
      row([
        '1',
        `uncontended lock()+unlock() cycles/s vs the library's own ${count} statements raw`,
        fmt(lib),
        fmt(own),
        ratio(lib, own),
        '≥ 0.85×',
        `1 process, same driver; replays what one cycle sends (${statements.join(', ')}${unrecorded ? `; ${unrecorded} more sent elsewhere, not replayed` : ''}) with a fresh token; the ${nat === undefined ? 'three' : 'four'} alternate in 200 ms slices`,
      ]);
      row([
        '1',
        "… vs a naive lock table's two statements raw",
        fmt(lib),
        fmt(raw),
        ratio(lib, raw),
        '—',
        'a plain conditional UPDATE that grants, an UPDATE that frees',
      ]);
      if (nat !== undefined) {
        row([
          '1',
          `… vs native ${native} + unlock`,
          fmt(lib),
          fmt(nat),
          ratio(lib, nat),
          '—',
          'native keeps no durable row (no commit)',
        ]);
      }
    }
    if (o.sections.has(2)) {
      for (const n of [4, 16]) {
        const contend = async (variant) => {
          const name = `${run}:c${n}:${variant}`;
          const before = await counterValue(base);
          const configs = Array.from({ length: n }, () => ({
            ...base,
            role: 'contend',
            variant,
            name,
            nativeId: 4242,
          }));
          const { results, server } = await runWorkers(configs, window(serverRate));
          const stats = contended(results, o.seconds);
          stats.server = server;
          stats.counterOk = (await counterValue(base)) - before === stats.total;
          return stats;
        };
        const lib = await contend('rlock');
        const nat = await contend('native');
        const durable = db.kind === 'sqlite' ? null : await contend('durable');
        const note = (s) =>
          `counter ${s.counterOk ? 'exact' : 'WRONG'}${s.overlaps ? `, ${s.overlaps} OVERLAPS` : ''}; same-process re-grants ${fmt(s.sameProcessShare * 100)}%`;
        const handOffs = (st) => st.perSecond * (1 - st.sameProcessShare);
        row([
          '2',
          `${n} processes, one name: grants/s (of which hand-offs to another process)`,
          `${fmt(lib.perSecond)} (${fmt(handOffs(lib))})`,
          `${fmt(nat.perSecond)} (${fmt(handOffs(nat))})`,
          ratio(lib.perSecond, nat.perSecond),
          n === 16
            ? db.kind === 'postgres'
              ? '≥ 1.0×'
              : db.kind === 'mariadb'
                ? '≥ 0.8×'
                : '—'
            : '—',
          `baseline ${native}; rlock ${note(lib)}; baseline ${note(nat)}`,
        ]);
        if (durable) {
          row([
            '2',
            `… vs native lock + durable grant/release writes`,
            `${fmt(lib.perSecond)} (${fmt(handOffs(lib))})`,
            `${fmt(durable.perSecond)} (${fmt(handOffs(durable))})`,
            ratio(lib.perSecond, durable.perSecond),
            '—',
            `${native}, then an UPDATE that grants and one that frees a lock-table row (autocommit) around the same critical section; hand-off p50 ${fmt(durable.p50, 2)} ms; ${note(durable)}`,
          ]);
        }
        row([
          '2',
          `${n} processes: hand-off p50 / p99 (ms)`,
          `${fmt(lib.p50, 2)} / ${fmt(lib.p99, 2)}`,
          `${fmt(nat.p50, 2)} / ${fmt(nat.p99, 2)}`,
          ratio(lib.p50, nat.p50),
          n === 16 ? 'p50 ≤ 1 ms' : '—',
          'unlock() called → lock() returned in another process',
        ]);
        row([
          '2',
          `${n} processes: per-worker min/max, Jain`,
          `${lib.min}/${lib.max}, ${fmt(lib.jain, 3)}`,
          `${nat.min}/${nat.max}, ${fmt(nat.jain, 3)}`,
          ratio(lib.jain, nat.jain),
          n === 16 ? 'Jain ≥ 0.9' : '—',
          '',
        ]);
        row([
          '2',
          `${n} processes: queries/s sent (server)`,
          `${fmt(lib.sentPerSecond)} (${fmt(lib.server)})`,
          `${fmt(nat.sentPerSecond)} (${fmt(nat.server)})`,
          ratio(lib.sentPerSecond, nat.sentPerSecond),
          '—',
          `queries per hand-off: ${fmt(lib.sentPerSecond / lib.perSecond, 1)} vs ${fmt(nat.sentPerSecond / nat.perSecond, 1)}; server: ${sampler.scope ?? 'n/a'}`,
        ]);
      }
    }
    if (o.sections.has(3)) {
      const distinct = async (variant) => {
        const configs = Array.from({ length: 16 }, () => ({
          ...base,
          role: 'cycle',
          variant,
          name: `${run}:d:${variant}`,
        }));
        const { results } = await runWorkers(configs, timing);
        return results.reduce((a, r) => a + r.cycles, 0) / o.seconds;
      };
      const lib = await distinct('rlock');
      const raw = await distinct('raw');
      row([
        '3',
        '16 processes, distinct names: cycles/s',
        fmt(lib),
        fmt(raw),
        ratio(lib, raw),
        '—',
        "baseline: a naive lock table's two statements raw",
      ]);
      if (db.kind !== 'sqlite') {
        const nat = await distinct('native');
        row(['3', `… vs native ${native}`, fmt(lib), fmt(nat), ratio(lib, nat), '—', '']);
      }
    }
    if (o.sections.has(4)) {
      const storm = async (waiters) => {
        const name = `${run}:storm:${waiters}`;
        const configs = [
          { ...base, role: 'hold', name },
          ...Array.from({ length: 10 }, () => ({ ...base, role: 'storm', name, waiters })),
        ];
        const { results, server } = await runWorkers(configs, window(serverRate));
        const stormers = results.slice(1);
        return {
          sent: stormers.reduce((a, r) => a + r.sent, 0) / o.seconds,
          acquired: stormers.reduce((a, r) => a + r.acquired, 0),
          server,
        };
      };
      const idle = await storm(0);
      const lib = await storm(100);
      row([
        '4',
        'waiter storm 10 processes × 100 waiters: queries/s sent (server)',
        `${fmt(lib.sent, 1)} (${fmt(lib.server)})`,
        `${fmt(idle.sent, 1)} (${fmt(idle.server)})`,
        '—',
        db.kind === 'postgres' ? '≈ 0' : '≤ 250 (25/process)',
        `${fmt(lib.sent / 10, 1)} per waiting process; baseline: same processes, no waiters (server background); ${lib.acquired} acquired while held (must be 0)`,
      ]);
    }
    if (o.sections.has(5)) {
      if (typeof rlock.WithRemoteLock !== 'function') {
        row([
          '5',
          '@WithRemoteLock call vs withLock()',
          '—',
          '—',
          '—',
          '≤ 5% overhead',
          'WithRemoteLock is not exported from lib/index.ts yet',
        ]);
      } else {
        const { results } = await runWorkers(
          [{ ...base, role: 'decorator', name: `${run}:dec` }],
          timing,
        );
        const { decorator: decorated, withLock: direct } = results[0];
        row([
          '5',
          '@WithRemoteLock calls/s vs withLock() calls/s',
          fmt(decorated),
          fmt(direct),
          ratio(decorated, direct),
          '≥ 0.95×',
          '1 process, uncontended; the two alternate in 200 ms slices',
        ]);
      }
    }
    if (o.sections.has(6) && db.kind === 'sqlite') {
      const { results } = await runWorkers(
        [{ ...base, role: 'heap', name: `${run}:heap`, cycles: o.heapCycles }],
        { warmup: 0, seconds: 0, nodeArgs: ['--expose-gc'] },
      );
      const h = results[0];
      const mb = (b) => b / 1024 / 1024;
      row([
        '6',
        `heap after ${fmt(o.heapCycles)} cycles vs after 1,000 (MB)`,
        fmt(mb(h.afterAll), 2),
        fmt(mb(h.after1k), 2),
        ratio(h.afterAll, h.after1k),
        '< +10 MB',
        `growth ${fmt(mb(h.afterAll - h.after1k), 2)} MB; handles after app.close(): ${h.handles.length ? h.handles.join(', ') : 'none'}`,
      ]);
    }
  } finally {
    await sampler.close();
    await dropTables(base).catch(() => undefined);
  }
}

async function prepareTables(base) {
  const { app, dataSource } = await startApp({ ...base, synchronize: true });
  const q = (sql) => dataSource.query(sql);
  await q(`CREATE TABLE IF NOT EXISTS ${COUNTER} (id INT PRIMARY KEY, value BIGINT NOT NULL)`);
  await q(`DELETE FROM ${COUNTER}`);
  await q(`INSERT INTO ${COUNTER} (id, value) VALUES (1, 0)`);
  await app.close();
}

async function counterValue(base) {
  const { DataSource } = require('typeorm');
  const { typeormOptions } = require('./support/app');
  const ds = new DataSource(typeormOptions(base.kind, base.url));
  await ds.initialize();
  const rows = await ds.query(`SELECT value FROM ${COUNTER} WHERE id = 1`);
  await ds.destroy();
  return Number(rows[0].value);
}

async function dropTables(base) {
  const { DataSource } = require('typeorm');
  const { typeormOptions } = require('./support/app');
  const ds = new DataSource(typeormOptions(base.kind, base.url));
  await ds.initialize();
  await ds.query(`DROP TABLE IF EXISTS ${COUNTER}`);
  await ds.query(`DROP TABLE IF EXISTS ${TABLE}`);
  await ds.destroy();
}

main().catch((error) => {
  removeSnapshot();
  process.stderr.write(`${error && error.stack ? error.stack : error}\n`);
  process.exit(1);
});
