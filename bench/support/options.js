// Command-line options of `npm run bench`.
const { mkdtempSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join, resolve } = require('node:path');

const ROOT = resolve(__dirname, '..', '..');

const USAGE = `Usage: npm run bench -- [--quick | --full] [--seconds N] [--postgres URL] [--mysql URL]
                          [--only sqlite,postgres,mariadb] [--sections 1,2,3,4,5,6,7,8]
                          [--processes 1,4,16,64] [--pgbouncer auto|off]
                          [--scale-server auto|main|private] [--out FILE] [--chart FILE]
  --quick        a few seconds per row (development; figures are rough)
  --full         the documented run (default)
  --seconds N    measured seconds per row (overrides the mode's)
  --postgres     PostgreSQL URL (or RLOCK_BENCH_POSTGRES_URL / RLOCK_TEST_POSTGRES_URL)
  --mysql        MySQL/MariaDB URL (or RLOCK_BENCH_MYSQL_URL / RLOCK_TEST_MYSQL_URL)
  --processes    the process counts of the scale rows (section 6)
  --pgbouncer    auto: the 64-process PostgreSQL row also runs through a PgBouncer the bench
                 starts (transaction pooling; needs the pgbouncer binary), off: not
  --scale-server where the 64-process rows of PostgreSQL and MariaDB run: auto (the given
                 server when it has 2 free connections per process, else a private server
                 the bench starts), main, private
  --out FILE     also write the tables as markdown to FILE
  --chart FILE   where the SVG chart goes (full: docs/bench-handoffs.svg, quick: bench/out/)
  --no-build     use dist/ as it is (default: build it first, under the build lock)
SQLite always runs (a temporary file).`;

const MODES = {
  // seconds: measured window of a row; warmup: before it; hold: the phase in which one
  // process holds the lock and the others wait (statements and connections are counted).
  quick: { seconds: 3, warmup: 0.5, hold: 2, heapCycles: 20_000, tableSeconds: 2 },
  full: { seconds: 8, warmup: 1, hold: 4, heapCycles: 100_000, tableSeconds: 4 },
};

/** Parses argv into the bench options. */
function parseOptions(argv) {
  const o = {
    ...MODES.full,
    mode: 'full',
    postgres: process.env.RLOCK_BENCH_POSTGRES_URL ?? process.env.RLOCK_TEST_POSTGRES_URL,
    mysql: process.env.RLOCK_BENCH_MYSQL_URL ?? process.env.RLOCK_TEST_MYSQL_URL,
    only: null,
    sections: new Set([1, 2, 3, 4, 5, 6, 7, 8]),
    processes: [1, 4, 16, 64],
    pgbouncer: 'auto',
    scaleServer: 'auto',
    out: null,
    chart: null,
  };
  let seconds = null;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${arg} needs a value\n${USAGE}`);
      return argv[++i];
    };
    if (arg === '--quick') Object.assign(o, MODES.quick, { mode: 'quick' });
    else if (arg === '--full') Object.assign(o, MODES.full, { mode: 'full' });
    else if (arg === '--seconds') seconds = Number(value());
    else if (arg === '--postgres') o.postgres = value();
    else if (arg === '--mysql') o.mysql = value();
    else if (arg === '--only') o.only = new Set(value().split(','));
    else if (arg === '--sections') o.sections = new Set(value().split(',').map(Number));
    else if (arg === '--processes') o.processes = value().split(',').map(Number);
    else if (arg === '--pgbouncer') o.pgbouncer = value();
    else if (arg === '--scale-server') o.scaleServer = value();
    else if (arg === '--out') o.out = value();
    else if (arg === '--chart') o.chart = value();
    else if (arg === '--no-build') o.build = false;
    else if (arg === '--help' || arg === '-h') {
      process.stdout.write(USAGE + '\n');
      process.exit(0);
    } else throw new Error(`Unknown option ${arg}\n${USAGE}`);
  }
  if (seconds !== null) o.seconds = seconds;
  if (!(o.seconds > 0)) throw new Error(`--seconds must be positive\n${USAGE}`);
  if (!['auto', 'off'].includes(o.pgbouncer)) throw new Error(`--pgbouncer auto|off\n${USAGE}`);
  if (!['auto', 'main', 'private'].includes(o.scaleServer)) {
    throw new Error(`--scale-server auto|main|private\n${USAGE}`);
  }
  if (!o.processes.every((n) => Number.isInteger(n) && n >= 1)) {
    throw new Error(`--processes takes positive integers\n${USAGE}`);
  }
  // A quick run never overwrites the committed chart.
  o.chart ??=
    o.mode === 'full'
      ? join(ROOT, 'docs', 'bench-handoffs.svg')
      : join(ROOT, 'bench', 'out', 'bench-handoffs.svg');
  // The SQLite file's directory is made only when SQLite runs (the bench removes it).
  const sqliteFile = () => join(mkdtempSync(join(tmpdir(), 'rlock-bench-')), 'bench.sqlite');
  o.databases = [
    (!o.only || o.only.has('sqlite')) && {
      kind: 'sqlite',
      label: 'SQLite (WAL)',
      url: sqliteFile(),
    },
    o.postgres && { kind: 'postgres', label: 'PostgreSQL', url: o.postgres },
    o.mysql && { kind: 'mariadb', label: 'MariaDB/MySQL', url: o.mysql },
  ].filter((db) => db && (!o.only || o.only.has(db.kind)));
  return o;
}

module.exports = { parseOptions, USAGE };
