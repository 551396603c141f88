// Command-line options of `npm run bench`.
const { mkdtempSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');

const USAGE = `Usage: npm run bench -- [--quick | --full] [--seconds N] [--postgres URL] [--mysql URL]
                          [--only sqlite,postgres,mariadb] [--sections 1,2,3,4,5,6] [--out FILE]
  --quick        a few seconds per row (trying things out)
  --full         the documented run (10 s per row; default)
  --postgres     PostgreSQL URL (or RLOCK_BENCH_POSTGRES_URL / RLOCK_TEST_POSTGRES_URL)
  --mysql        MySQL/MariaDB URL (or RLOCK_BENCH_MYSQL_URL / RLOCK_TEST_MYSQL_URL)
  --out FILE     also write the tables as markdown to FILE
  --no-build     use dist/ as it is (default: build it first, under the build lock)
SQLite always runs (a temporary file).`;

/** Parses argv into the bench options. */
function parseOptions(argv) {
  const o = {
    seconds: 10,
    warmup: 1,
    heapCycles: 100_000,
    postgres: process.env.RLOCK_BENCH_POSTGRES_URL ?? process.env.RLOCK_TEST_POSTGRES_URL,
    mysql: process.env.RLOCK_BENCH_MYSQL_URL ?? process.env.RLOCK_TEST_MYSQL_URL,
    only: null,
    sections: new Set([1, 2, 3, 4, 5, 6]),
    out: null,
    mode: 'full',
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${arg} needs a value\n${USAGE}`);
      return argv[++i];
    };
    if (arg === '--quick')
      Object.assign(o, { seconds: 3, warmup: 0.5, heapCycles: 20_000, mode: 'quick' });
    else if (arg === '--full')
      Object.assign(o, { seconds: 10, warmup: 1, heapCycles: 100_000, mode: 'full' });
    else if (arg === '--seconds') o.seconds = Number(value());
    else if (arg === '--postgres') o.postgres = value();
    else if (arg === '--mysql') o.mysql = value();
    else if (arg === '--only') o.only = new Set(value().split(','));
    else if (arg === '--sections') o.sections = new Set(value().split(',').map(Number));
    else if (arg === '--out') o.out = value();
    else if (arg === '--no-build') o.build = false;
    else if (arg === '--help' || arg === '-h') {
      process.stdout.write(USAGE + '\n');
      process.exit(0);
    } else throw new Error(`Unknown option ${arg}\n${USAGE}`);
  }
  if (!(o.seconds > 0)) throw new Error(`--seconds must be positive\n${USAGE}`);
  const sqliteFile = join(mkdtempSync(join(tmpdir(), 'rlock-bench-')), 'bench.sqlite');
  o.databases = [
    { kind: 'sqlite', label: 'SQLite (WAL)', url: sqliteFile },
    o.postgres && { kind: 'postgres', label: 'PostgreSQL', url: o.postgres },
    o.mysql && { kind: 'mariadb', label: 'MariaDB/MySQL', url: o.mysql },
  ].filter((db) => db && (!o.only || o.only.has(db.kind)));
  return o;
}

module.exports = { parseOptions, USAGE };
