// `npm run bench`: measures nestjs-rlock against baselines taken in the same run, on SQLite
// and (when given URLs) PostgreSQL and MariaDB/MySQL, with one OS process per worker.
// Never part of `npm test`. Needs dist/ (npm run build). See BENCHMARKS.md.
const { mkdirSync, rmSync, writeFileSync } = require('node:fs');
const { dirname } = require('node:path');
const { loadavg } = require('node:os');
const { snapshotDist } = require('./support/dist-snapshot');
const removeSnapshot = snapshotDist(!process.argv.includes('--no-build'));
const { parseOptions } = require('./support/options');
const { runWorkers, startCrew } = require('./support/processes');
const { serverProbe, countRate } = require('./support/server-stats');
const { contended, afterHold } = require('./support/stats');
const { handoffChart } = require('./support/chart');
const servers = require('./support/servers');

const TABLE = 'rlock_bench';
const COUNTER = 'rlock_bench_counter';
const ROWS_TABLE = 'rlock_bench_rows';
/** Counter rows: one per name of the many-names rows. */
const COUNTER_ROWS = 64;
const run = `r${process.pid}`;

const fmt = (n, digits = 0) =>
  Number.isFinite(n)
    ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : '—';
const ratio = (a, b) =>
  Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}×` : '—';
const ms = (a, b) => `${fmt(a, 2)} / ${fmt(b, 2)}`;

/** Targets of issue 12 (ratios are rlock ÷ baseline). */
const TARGETS = {
  throughput16: { postgres: '≥ 0.8×', mariadb: '≥ 0.7×', sqlite: '—' },
  p50: { postgres: '≤ 1.5 ms', mariadb: '≤ 1.5 ms', sqlite: '—' },
  jain: '≥ 0.95',
  uncontended: '≥ 0.85×',
  waitingStatements: { postgres: '≤ 2', mariadb: '≤ 2', sqlite: '—' },
};

const MAIN_HEADER = [
  '| # | row | rlock | baseline | ratio | target | notes |',
  '|---|---|---:|---:|---:|---|---|',
];
const SCALE_HEADER = [
  '| # | processes / names | rlock hand-offs/s | native hand-offs/s | ratio | rlock p50 / p99 (ms) | native p50 / p99 (ms) | Jain rlock / native | statements/s per waiting process, sent (server) | connections per process: pool + extra, waiting; contended | notes |',
  '|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|',
];
const SIZE_HEADER = [
  '| # | rows in the lock table | lock() of a fresh name p50 / p99 (ms) | ratio of p50 to the 10-row case | cycles/s | notes |',
  '|---|---:|---:|---:|---:|---|',
];

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
  const begun = Date.now();
  print(
    `# nestjs-rlock bench — ${new Date().toISOString()}, mode ${o.mode} (${o.seconds} s per row after ${o.warmup} s warm-up; hold phase ${o.hold} s)`,
  );
  print(
    `Node ${process.version}, ${require('node:os').cpus().length} CPUs; load average at start: ${load()}`,
  );
  const chart = [];
  for (const db of o.databases) {
    const started = Date.now();
    print();
    print(`## ${db.label}`);
    const panel = {
      title: db.label,
      groups: [],
      notes:
        db.kind === 'sqlite'
          ? [
              'native: hand-offs to another process (BEGIN IMMEDIATE re-grants to the same process ~99% of the time)',
            ]
          : [],
    };
    await benchDatabase(db, o, print, panel);
    if (panel.groups.length > 0) chart.push(panel);
    print();
    print(
      `load average after ${db.label}: ${load()} (${Math.round((Date.now() - started) / 1000)} s)`,
    );
  }
  print();
  print(`total: ${Math.round((Date.now() - begun) / 1000)} s`);
  if (chart.length > 0) {
    mkdirSync(dirname(o.chart), { recursive: true });
    writeFileSync(
      o.chart,
      handoffChart({
        title: 'nestjs-rlock: hand-offs/s on one name, against the native lock',
        subtitle: `bench (${o.mode}), ${new Date().toISOString().slice(0, 10)} · one durable write inside each holding · native: pg_advisory_lock, GET_LOCK, BEGIN IMMEDIATE`,
        panels: chart,
      }),
    );
    print(`chart: ${o.chart}`);
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

/** A progress line on stderr (the tables go to stdout). */
function progress(message) {
  process.stderr.write(`[bench] ${message}\n`);
}

/** Prints tables as their first row arrives. */
function tables(print) {
  let current = null;
  return (header, cells) => {
    if (current !== header) {
      print();
      for (const line of header) print(line);
      current = header;
    }
    print(`| ${cells.join(' | ')} |`);
  };
}

async function benchDatabase(db, o, print, panel) {
  const base = { kind: db.kind, url: db.url, table: TABLE, counterTable: COUNTER };
  await prepareTables(base);
  const probe = await serverProbe(db);
  const table = tables(print);
  const row = (cells) => table(MAIN_HEADER, cells);
  const scaleRow = (cells) => table(SCALE_HEADER, cells);
  const timing = { warmup: o.warmup, seconds: o.seconds };
  const native =
    db.kind === 'sqlite'
      ? 'BEGIN IMMEDIATE'
      : db.kind === 'postgres'
        ? 'pg_advisory_lock'
        : 'GET_LOCK';
  // What the bench started for this database (stopped at the end), and its private server.
  const cleanups = [];
  const runs = new Map();
  // One set of worker processes at a time, kept for the runs that can share it.
  let crew = null;
  const crewFor = async (spec, b) => {
    const key = JSON.stringify([spec.processes, spec.poolSize ?? 1, b.url]);
    if (crew?.key === key) return crew.workers;
    if (crew) await crew.workers.close();
    crew = null;
    const workers = await startCrew(
      Array.from({ length: spec.processes }, () => ({
        ...b,
        role: 'contend',
        poolSize: spec.poolSize ?? 1,
      })),
    );
    crew = { key, workers };
    return workers;
  };
  cleanups.push(async () => crew?.workers.close());
  /** One contended run, once (rows 2 and 6 share the 16-process run, 6 and 7 the 64-process processes). */
  const contend = (spec) => {
    const { processes, variant, work = 'write', names = 1, loops = 'random', poolSize = 1 } = spec;
    const b = spec.base ?? base;
    const key = JSON.stringify([processes, variant, work, names, loops, poolSize, b.url]);
    if (!runs.has(key)) {
      const started = Date.now();
      const what = `${processes}×${names}${spec.bouncer ? ' via PgBouncer' : ''} ${variant}/${work}`;
      runs.set(
        key,
        crewFor(spec, b)
          .then((workers) => contendRun(workers, b, spec.probe ?? probe, o, spec))
          .then(
            (stats) => {
              progress(`${db.kind}: ${what} ${((Date.now() - started) / 1000).toFixed(0)} s`);
              return stats;
            },
            async (error) => {
              progress(`${db.kind}: ${what} FAILED: ${String(error.message).split('\n')[0]}`);
              // Its processes were stopped: the next run starts new ones.
              await crew?.workers.close();
              crew = null;
              throw error;
            },
          ),
      );
    }
    return runs.get(key);
  };
  try {
    if (o.sections.has(1)) {
      const { results } = await runWorkers(
        [{ ...base, role: 'compare', name: `${run}:u` }],
        timing,
      );
      const { rlock: lib, own, simplest, native: nat } = results[0].perSecond;
      const { statements, unrecorded } = results[0].own;
      row([
        '1',
        'uncontended lock()+unlock() cycles/s vs the simplest lock table',
        fmt(lib),
        fmt(simplest),
        ratio(lib, simplest),
        TARGETS.uncontended,
        '1 process; baseline: one conditional upsert that takes (and returns the fence and the previous outcome), one UPDATE that frees, on one connection of the same driver; the variants alternate in 200 ms slices',
      ]);
      row([
        '1',
        `… vs the library's own ${statements.length} statements raw`,
        fmt(lib),
        fmt(own),
        ratio(lib, own),
        '—',
        `what one cycle sends (${statements.join(', ')}${unrecorded ? `; ${unrecorded} more not recorded` : ''}), replayed with a fresh token: the library's cost above its SQL`,
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
      for (const work of ['write', 'none']) {
        await guarded(
          async () => {
            const lib = await contend({ processes: 16, variant: 'rlock', work });
            const nat = await contend({ processes: 16, variant: 'native', work });
            const inside = work === 'write' ? 'one durable write inside' : 'nothing inside';
            row([
              '2',
              `16 processes, one name, ${inside}: hand-offs/s`,
              fmt(lib.handOffsPerSecond),
              fmt(nat.handOffsPerSecond),
              ratio(lib.handOffsPerSecond, nat.handOffsPerSecond),
              TARGETS.throughput16[db.kind],
              `baseline ${native} with the same work inside; grants/s ${fmt(lib.perSecond)} vs ${fmt(nat.perSecond)}; rlock ${checks(lib)}; baseline ${checks(nat)}`,
            ]);
            row([
              '2',
              `… hand-off p50 / p99 (ms)`,
              ms(lib.p50, lib.p99),
              ms(nat.p50, nat.p99),
              ratio(lib.p50, nat.p50),
              TARGETS.p50[db.kind],
              'unlock() called → lock() returned in another process',
            ]);
            row([
              '2',
              `… Jain across processes (grants per process min/max)`,
              `${fmt(lib.jain, 3)} (${lib.min}/${lib.max})`,
              `${fmt(nat.jain, 3)} (${nat.min}/${nat.max})`,
              ratio(lib.jain, nat.jain),
              TARGETS.jain,
              '',
            ]);
          },
          (failure) =>
            row([
              '2',
              `16 processes, one name, ${work === 'write' ? 'one durable write inside' : 'nothing inside'}`,
              '—',
              '—',
              '—',
              '—',
              failure,
            ]),
        );
      }
    }
    if (o.sections.has(3)) {
      const storm = async (waiters) => {
        const name = `${run}:storm:${waiters}`;
        const configs = [
          { ...base, role: 'hold', name },
          ...Array.from({ length: 10 }, () => ({ ...base, role: 'storm', name, waiters })),
        ];
        const { results, server } = await runWorkers(configs, {
          ...timing,
          // Counted in steady state: each waiter's first attempt and the places are taken by then.
          warmup: Math.max(o.warmup, 2),
          during: (t) => countRate(probe, t.from, t.until),
        });
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
        '3',
        'waiter storm 10 processes × 100 waiters: statements/s sent (server)',
        `${fmt(lib.sent, 1)} (${fmt(lib.server)})`,
        `${fmt(idle.sent, 1)} (${fmt(idle.server)})`,
        '—',
        db.kind === 'sqlite' ? '—' : '≤ 20 (2 per process)',
        `${fmt(lib.sent / 10, 1)} per waiting process; baseline: the same processes without waiters (server background: ${probe.scope ?? 'n/a'}); ${lib.acquired} acquired while held (must be 0)`,
      ]);
    }
    if (o.sections.has(4)) {
      const { results } = await runWorkers(
        [{ ...base, role: 'decorator', name: `${run}:dec` }],
        timing,
      );
      const { decorator: decorated, withLock: direct } = results[0];
      row([
        '4',
        '@WithRemoteLock calls/s vs withLock() calls/s',
        fmt(decorated),
        fmt(direct),
        ratio(decorated, direct),
        '≥ 0.95×',
        '1 process, uncontended; the two alternate in 200 ms slices',
      ]);
    }
    if (o.sections.has(5) && db.kind === 'sqlite') {
      const { results } = await runWorkers(
        [{ ...base, role: 'heap', name: `${run}:heap`, cycles: o.heapCycles }],
        { warmup: 0, seconds: 0, nodeArgs: ['--expose-gc'] },
      );
      const h = results[0];
      const mb = (b) => b / 1024 / 1024;
      row([
        '5',
        `heap after ${fmt(o.heapCycles)} cycles vs after 1,000 (MB)`,
        fmt(mb(h.afterAll), 2),
        fmt(mb(h.after1k), 2),
        ratio(h.afterAll, h.after1k),
        '< +10 MB',
        `growth ${fmt(mb(h.afterAll - h.after1k), 2)} MB; handles after app.close(): ${h.handles.length ? h.handles.join(', ') : 'none'}`,
      ]);
    }
    const dashes = Array(8).fill('—');
    if (o.sections.has(6)) {
      for (const n of o.processes) {
        const label = `${n} process${n === 1 ? '' : 'es'}, one name`;
        const target =
          n >= 32 ? await scaleServer(db, base, probe, n, cleanups, o) : { base, probe };
        if (target.skip) {
          scaleRow(['6', label, ...dashes, target.skip]);
          panel.notes.push(`${n} processes: not run (${target.skip})`);
          continue;
        }
        const spec = { processes: n, work: 'write', base: target.base, probe: target.probe };
        await guarded(
          async () => {
            const lib = await contend({ ...spec, variant: 'rlock' });
            const nat = await contend({ ...spec, variant: 'native' });
            scaleRow(scaleCells('6', label, db, lib, nat, target.note));
            const value = (s) => (n === 1 ? s.perSecond : s.handOffsPerSecond);
            panel.groups.push({ label: `${n}`, library: value(lib), native: value(nat) });
            if (target.short) panel.notes.push(`${n}: ${target.short}`);
          },
          (failure) => scaleRow(['6', label, ...dashes, failure]),
        );
        if (n === 64 && o.sections.has(7)) {
          // Row 7's 64 names, on the same 64 processes (measured now, printed with row 7).
          const many = { ...spec, names: 64 };
          await guarded(async () => {
            await contend({ ...many, variant: 'rlock' });
            await contend({ ...many, variant: 'native' });
          });
        }
        if (n === 64 && db.kind === 'postgres' && o.pgbouncer === 'auto') {
          const label64 = '64 processes through PgBouncer';
          const via = await pgbouncerServer(target, cleanups);
          if (via.skip) {
            scaleRow(['6', label64, ...dashes, via.skip]);
            panel.notes.push(`PgBouncer: not run (${via.skip})`);
            continue;
          }
          const pspec = { ...spec, base: via.base, probe: via.probe, bouncer: via.bouncer };
          await guarded(
            async () => {
              const plib = await contend({ ...pspec, variant: 'rlock' });
              const pnat = await contend({ ...pspec, variant: 'xact' });
              scaleRow(scaleCells('6', label64, db, plib, pnat, via.note));
              panel.groups.push({
                label: '64 via\nPgBouncer',
                library: plib.handOffsPerSecond,
                native: pnat.handOffsPerSecond,
              });
            },
            (failure) => scaleRow(['6', label64, ...dashes, failure]),
          );
        }
      }
    }
    if (o.sections.has(7)) {
      const label = '64 processes, 64 names';
      const target = await scaleServer(db, base, probe, 64, cleanups, o);
      if (target.skip) {
        scaleRow(['7', label, ...dashes, target.skip]);
      } else {
        const spec = { processes: 64, names: 64, work: 'write', base: target.base };
        await guarded(
          async () => {
            const lib = await contend({ ...spec, probe: target.probe, variant: 'rlock' });
            const nat = await contend({ ...spec, probe: target.probe, variant: 'native' });
            const note = `each cycle takes one of 64 names at random${db.kind === 'sqlite' ? '; SQLite native: one database-wide write lock' : ''}${target.note ? `; ${target.note}` : ''}`;
            scaleRow(scaleCells('7', label, db, lib, nat, note));
          },
          (failure) => scaleRow(['7', label, ...dashes, failure]),
        );
      }
      const label50 = '1 process waiting on 50 names';
      await guarded(
        async () => {
          const many = await contend({
            processes: 2,
            names: 50,
            loops: 'each',
            work: 'none',
            poolSize: 10,
            variant: 'rlock',
          });
          const after = many.afterHold;
          scaleRow(
            scaleCells(
              '7',
              label50,
              db,
              many,
              null,
              `while held: one process holds 50 names, another waits on all 50 (pool of 10); its release of all 50: handed over in p50 ${fmt(after.p50, 1)} ms, the last after ${fmt(after.max, 1)} ms${after.missing ? ` (${after.missing} not handed)` : ''}; then both processes loop on all 50 names (50 loops each, nothing inside); native: would need 50 connections per process`,
            ),
          );
        },
        (failure) => scaleRow(['7', label50, ...dashes, failure]),
      );
    }
    if (o.sections.has(8)) {
      await tableSizes(base, o, (cells) => table(SIZE_HEADER, cells));
    }
  } finally {
    await probe.close();
    await dropTables(base).catch(() => undefined);
    for (const cleanup of cleanups.reverse()) await cleanup();
  }
}

/** Runs a row; a failure (a worker that died, a server that refused) becomes the row's note. */
async function guarded(fn, onFailure = () => undefined) {
  try {
    await fn();
  } catch (error) {
    const message = String(error?.message ?? error)
      .split('\n')
      .filter(Boolean)
      .slice(0, 2)
      .join(' ');
    onFailure(`FAILED: ${message.slice(0, 300)}`);
  }
}

/** Notes of a contended run: its checks. */
function checks(s) {
  const counter = s.counterOk === null ? '' : `counter ${s.counterOk ? 'exact' : 'WRONG'}, `;
  const lost = s.lost ? `, ${s.lost} LOST at unlock() (${s.lostExample})` : '';
  const expired = s.expiredOnArrival
    ? `, ${s.expiredOnArrival} lock() returned with the lease already run out (shortest ${fmt(s.shortestLease)} ms)`
    : '';
  return `${counter}${s.overlaps ? `${s.overlaps} OVERLAPS` : 'no overlap'}${lost}${expired}, same-process re-grants ${fmt(s.sameProcessShare * 100)}%`;
}

/** The cells of a scale row. */
function scaleCells(number, label, db, lib, nat, note) {
  const perWaiting = lib.waiting
    ? `${fmt(lib.waiting.sent, 1)} (${fmt(lib.waiting.server, 1)})`
    : '—';
  const conn = (c) => (c ? `${fmt(c.pool, 1)} + ${fmt(c.extra)}` : '—');
  const one = lib.processes === 1;
  const value = (s) => (one ? s.perSecond : s.handOffsPerSecond);
  return [
    number,
    label,
    fmt(value(lib)),
    nat ? fmt(value(nat)) : '—',
    nat ? ratio(value(lib), value(nat)) : '—',
    ms(lib.p50, lib.p99),
    nat ? ms(nat.p50, nat.p99) : '—',
    `${fmt(lib.jain, 3)} / ${nat ? fmt(nat.jain, 3) : '—'}`,
    perWaiting,
    db.kind === 'sqlite' ? '—' : `${conn(lib.connections.hold)}; ${conn(lib.connections.window)}`,
    [
      one ? 'one process: grants/s (no other process to hand to)' : '',
      `rlock ${checks(lib)}`,
      nat ? `native ${checks(nat)}` : '',
      lib.afterHold && lib.processes > 2 && lib.names === 1
        ? `the holder's release → next holder ${fmt(lib.afterHold.p50, 1)} ms`
        : '',
      `longest lock() wait: rlock ${fmt(lib.longestWait)} ms${nat ? `, native ${fmt(nat.longestWait)} ms` : ''}`,
      note ?? '',
    ]
      .filter(Boolean)
      .join('; '),
  ];
}

/**
 * One contended run: `processes` workers on `names` names (the critical section's work
 * and loop shape as in the worker's `contend` role). For the library, with two or more
 * processes, a hold phase first (one process holds every name, the others wait): the
 * statements and connections of waiting processes are counted then.
 */
async function contendRun(crew, base, probe, o, spec) {
  const { processes, variant, work = 'write', names = 1, loops = 'random', bouncer: via } = spec;
  const name = `${run}:${processes}x${names}${loops}:${work}:${variant}${via ? ':b' : ''}`;
  const hold = variant === 'rlock' && processes > 1 ? o.hold : 0;
  const before = work === 'write' ? await counterSum(base) : null;
  const runs = Array.from({ length: processes }, (_, i) => ({
    variant,
    work,
    names,
    loops,
    name,
    nativeBase: 4242 + processes * 1000 + names * 100,
    holder: hold > 0 && i === 0,
  }));
  const {
    results,
    server,
    window,
    hold: held,
  } = await crew.run(runs, {
    warmup: o.warmup,
    seconds: o.seconds,
    hold,
    during: (t) => (hold > 0 ? countRate(probe, t.holdSample, t.holdUntil) : null),
  });
  const stats = contended(results, window);
  stats.processes = processes;
  stats.names = names;
  stats.counterOk = before === null ? null : (await counterSum(base)) - before === stats.total;
  stats.lost = results.reduce((a, r) => a + (r.lost ?? 0), 0);
  stats.longestWait = Math.max(...results.map((r) => r.longestWait ?? 0));
  stats.expiredOnArrival = results.reduce((a, r) => a + (r.expiredOnArrival ?? 0), 0);
  const leases = results.map((r) => r.shortestLease).filter((v) => v !== null && v !== undefined);
  stats.shortestLease = leases.length ? Math.min(...leases) : null;
  stats.lostExample = results.find((r) => r.lostExample)?.lostExample;
  const waiters = results.filter((r) => !r.holder);
  if (held) {
    const seconds = (held[1] - held[0]) / 1e9;
    const waiting = waiters.length;
    stats.waiting = {
      sent: waiters.reduce((a, r) => a + r.sentHold, 0) / waiting / seconds,
      server: server === null ? null : server / waiting,
    };
    stats.afterHold = afterHold(
      results,
      results.findIndex((r) => r.holder),
    );
  }
  /** Mean pool connections and the largest number of extra ones of a set of processes at a moment. */
  const connections = (set, moment) => {
    const seen = set.map((r) => r.connections?.[moment]).filter((c) => c && c.all !== null);
    if (seen.length === 0) return null;
    return {
      pool: seen.reduce((a, c) => a + c.pool, 0) / seen.length,
      extra: Math.max(...seen.map((c) => c.all - c.pool)),
    };
  };
  stats.connections = {
    hold: held ? connections(waiters, 'hold') : null,
    window: connections(results, 'window'),
  };
  return stats;
}

/** Where a database's 64-process rows run (by the run's cleanup list). */
const privateServers = new WeakMap();

/**
 * Where the 64-process rows of a database run: its own server when it has connections for
 * them (a process needs its pool of 1 and the library's extra connection), else a private
 * server of the same kind that the bench starts; else the row is skipped with the reason.
 */
async function scaleServer(db, base, probe, processes, cleanups, o) {
  if (db.kind === 'sqlite') return { base, probe };
  // Decided once per database: sections 6 and 7 share the 64 processes.
  if (!privateServers.has(cleanups)) {
    privateServers.set(cleanups, await chooseServer(db, base, probe, processes, cleanups, o));
  }
  return privateServers.get(cleanups);
}

async function chooseServer(db, base, probe, processes, cleanups, o) {
  const needed = processes * 2 + 4;
  const free = await freeConnections(db);
  if (o.scaleServer === 'main' || (o.scaleServer === 'auto' && free >= needed)) {
    return { base, probe };
  }
  const reason =
    o.scaleServer === 'private'
      ? '--scale-server private'
      : `the given server has ${free} free connections, ${needed} needed (${processes} × (pool of 1 + the doorbell) + 4)`;
  const postgres = db.kind === 'postgres';
  const missing = postgres ? servers.privatePostgresMissing() : servers.privateMariadbMissing();
  if (missing) return { skip: `not run: ${reason}; a private server cannot start: ${missing}` };
  const server = await (postgres ? servers.startPrivatePostgres : servers.startPrivateMariadb)({
    db: 'rlock_bench',
    maxConnections: 300,
  });
  cleanups.push(() => server.stop());
  const privateBase = { ...base, url: server.url };
  await prepareTables(privateBase);
  const privateProbe = await serverProbe({ kind: db.kind, url: server.url });
  cleanups.push(() => privateProbe.close());
  const what = postgres ? 'PostgreSQL 15' : 'MariaDB (same binaries)';
  return {
    base: privateBase,
    probe: privateProbe,
    port: server.port,
    note: `on a private ${what} the bench started (max_connections 300, defaults otherwise): ${reason}`,
    short: `on a private ${what} the bench started (${o.scaleServer === 'private' ? '--scale-server private' : 'the given server has too few free connections'})`,
  };
}

/** A PgBouncer (transaction pooling, 8 server connections) in front of the scale server. */
async function pgbouncerServer(target, cleanups) {
  const missing = servers.pgbouncerMissing();
  if (missing) return { skip: `not run: ${missing}` };
  const targetPort = Number(new URL(target.base.url).port || 5432);
  const pgb = await servers.startPgBouncer({ targetPort, db: 'rlock_bench', poolSize: 8 });
  cleanups.push(async () => pgb.stop());
  return {
    base: { ...target.base, url: pgb.url },
    probe: target.probe,
    bouncer: true,
    note: `PgBouncer in transaction pooling, 8 server connections${target.short ? ', in front of the private PostgreSQL the bench started' : ''}; native: BEGIN, pg_advisory_xact_lock, the write, COMMIT (a session lock cannot pass a transaction pooler)`,
  };
}

/** Connections the server can still accept. */
async function freeConnections(db) {
  const { DataSource } = require('typeorm');
  const { typeormOptions } = require('./support/app');
  const ds = new DataSource(typeormOptions(db.kind, db.url, 1));
  await ds.initialize();
  try {
    if (db.kind === 'postgres') {
      const [r] = await ds.query(
        `SELECT current_setting('max_connections')::int - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS free`,
      );
      return Number(r.free);
    }
    const [r] = await ds.query(
      'SELECT @@max_connections - (SELECT count(*) FROM information_schema.processlist) AS free',
    );
    return Number(r.free);
  } finally {
    await ds.destroy();
  }
}

/** Row 8: lock() of a fresh name with 10, 10,000 and 100,000 rows in the lock table. */
async function tableSizes(base, o, row) {
  const sizes = [10, 10_000, 100_000];
  const tablesOf = sizes.map((size) => `${ROWS_TABLE}_${size}`);
  const { startApp } = require('./support/app');
  const apps = [];
  try {
    for (const [k, table] of tablesOf.entries()) {
      const app = await startApp({ ...base, table, synchronize: true });
      apps.push(app);
      const q = (sql, params) => app.dataSource.query(sql, params);
      await q(`DELETE FROM ${table}`);
      await fill(base.kind, q, table, sizes[k]);
    }
    const { results } = await runWorkers(
      [{ ...base, role: 'fresh', tables: tablesOf, name: `${run}:fresh` }],
      { warmup: o.warmup, seconds: o.tableSeconds * sizes.length },
    );
    const [first] = results[0];
    results[0].forEach((r, k) => {
      row([
        '8',
        fmt(sizes[k]),
        ms(r.p50, r.p99),
        ratio(r.p50, first.p50),
        fmt(r.cycles / o.tableSeconds),
        `${k === 0 ? 'one process; each cycle a name never used before (its row is created), then unlock(); the three tables alternate in 200 ms slices; ' : ''}target: within 1.2× of the 10-row case; ${fmt(r.sent / r.cycles, 1)} statements per cycle`,
      ]);
    });
  } finally {
    for (const [k, app] of apps.entries()) {
      const q = (sql) => app.dataSource.query(sql).catch(() => undefined);
      await q(`DROP TABLE IF EXISTS ${tablesOf[k]}_waiters`);
      await q(`DROP TABLE IF EXISTS ${tablesOf[k]}`);
      await app.app.close();
    }
  }
}

/** Fills a lock table with `count` free locks (random-looking ids, as lock keys are). */
async function fill(kind, q, table, count) {
  if (kind === 'postgres') {
    await q(
      `INSERT INTO ${table} (id, name, fence) SELECT md5(i::text) || md5((-i)::text), 'filler:' || i, 1 FROM generate_series(1, $1::int) AS i`,
      [count],
    );
  } else if (kind === 'mariadb') {
    await q(
      `INSERT INTO ${table} (id, name, fence) SELECT SHA2(seq, 256), CONCAT('filler:', seq), 1 FROM seq_1_to_${count}`,
    );
  } else {
    await q(
      `WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ?)
       INSERT INTO ${table} (id, name, fence) SELECT lower(hex(randomblob(32))), 'filler:' || i, 1 FROM s`,
      [count],
    );
  }
}

async function prepareTables(base) {
  const { startApp } = require('./support/app');
  const { app, dataSource } = await startApp({ ...base, synchronize: true });
  const q = (sql) => dataSource.query(sql);
  await q(`CREATE TABLE IF NOT EXISTS ${COUNTER} (id INT PRIMARY KEY, value BIGINT NOT NULL)`);
  await q(`DELETE FROM ${COUNTER}`);
  const values = Array.from({ length: COUNTER_ROWS }, (_, i) => `(${i + 1}, 0)`).join(', ');
  await q(`INSERT INTO ${COUNTER} (id, value) VALUES ${values}`);
  await app.close();
}

async function counterSum(base) {
  const { DataSource } = require('typeorm');
  const { typeormOptions } = require('./support/app');
  const ds = new DataSource(typeormOptions(base.kind, base.url, 1));
  await ds.initialize();
  const rows = await ds.query(`SELECT SUM(value) AS value FROM ${COUNTER}`);
  await ds.destroy();
  return Number(rows[0].value);
}

async function dropTables(base) {
  const { DataSource } = require('typeorm');
  const { typeormOptions } = require('./support/app');
  const ds = new DataSource(typeormOptions(base.kind, base.url, 1));
  await ds.initialize();
  await ds.query(`DROP TABLE IF EXISTS ${COUNTER}`);
  await ds.query(`DROP TABLE IF EXISTS ${TABLE}_waiters`);
  await ds.query(`DROP TABLE IF EXISTS ${TABLE}`);
  await ds.destroy();
}

main().catch((error) => {
  removeSnapshot();
  process.stderr.write(`${error && error.stack ? error.stack : error}\n`);
  process.exit(1);
});
