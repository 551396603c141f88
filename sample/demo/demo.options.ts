import { parseArgs } from 'node:util';

/** Options of the demo (`npm start -- --help`). */
export interface DemoOptions {
  /** How many instances of the sample to start. */
  instances: number;
  /** A database URL; undefined: a fresh SQLite file in a temporary directory. */
  databaseUrl: string | undefined;
  /** How long the background traffic runs, at least, in ms. */
  durationMs: number;
  /** How long creating a resource takes, in ms. */
  workMs: number;
  /** Lease of the locks, in ms: how long the cluster waits for a killed holder. */
  ttlMs: number;
  /** Where to write the machine-readable summary (JSON), if anywhere. */
  summaryFile: string | undefined;
  /** Show the progress bar (on a terminal only). */
  progress: boolean;
  /** Keep the demo's tables on a database server (they are dropped by default). */
  keepTables: boolean;
}

/** The usage text of `--help`. */
export const DEMO_USAGE = `Usage: npm start -- [options]

Starts several instances of the sample app on one database, makes them race for the same
resources, kills one while it holds a lock, and checks that every resource was created once.

  --instances N     instances to start (default 5, at least 3)
  --db URL          postgres://…, mysql://… or mariadb://… (default: a new SQLite file)
  --duration S      seconds of background traffic, at least (default 15)
  --work-ms MS      how long creating a resource takes (default 1500)
  --ttl-ms MS       lock lease: how long a killed holder keeps its lock (default 3000)
  --summary FILE    also write the summary as JSON to FILE
  --no-progress     no progress bar
  --keep-tables     keep the demo's tables on a database server
`;

/** Parses the command line; throws with a readable message on bad input. */
export function parseDemoOptions(argv: string[]): DemoOptions | 'help' {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      instances: { type: 'string' },
      db: { type: 'string' },
      duration: { type: 'string' },
      'work-ms': { type: 'string' },
      'ttl-ms': { type: 'string' },
      summary: { type: 'string' },
      'no-progress': { type: 'boolean' },
      'keep-tables': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  return {
    instances: integer('--instances', values.instances, 5, 3, 20),
    databaseUrl: values.db ?? process.env.DATABASE_URL,
    durationMs: integer('--duration', values.duration, 15, 1, 600) * 1000,
    workMs: integer('--work-ms', values['work-ms'], 1_500, 100, 60_000),
    ttlMs: integer('--ttl-ms', values['ttl-ms'], 3_000, 300, 60_000),
    summaryFile: values.summary,
    progress: !values['no-progress'],
    keepTables: values['keep-tables'] ?? false,
  };
}

function integer(
  flag: string,
  raw: string | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`${flag} must be an integer from ${min} to ${max}; got "${raw}".`);
  }
  return value;
}
