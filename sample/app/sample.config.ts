import { hostname } from 'node:os';
import { parseArgs } from 'node:util';

/** How one instance of the sample is configured (environment variables, or flags of `npm run sample`). */
export interface SampleConfig {
  /** A short name for this instance, shown as the lock holder and in responses. */
  instance: string;
  /** HTTP port (0 picks a free one). */
  port: number;
  /** A SQLite file path, or a `postgres://`, `mysql://` or `mariadb://` URL. */
  databaseUrl: string;
  /** Prefix of the sample's table names, so that several demos can share one database server. */
  tablePrefix: string;
  /** How long creating a resource takes, in ms (a request may ask for another duration). */
  workMs: number;
  /** Lease of the locks: how long a crashed holder keeps a lock, in ms. */
  ttlMs: number;
  /** How long `POST /resources/:id` waits for another instance's lock, in ms. */
  acquireTimeoutMs: number;
  /** Whether the cluster-wide audit job runs every second. */
  auditEnabled: boolean;
}

/** Reads the configuration: flags win over environment variables, which win over defaults. */
export function loadSampleConfig(
  env: NodeJS.ProcessEnv = process.env,
  argv: string[] = process.argv.slice(2),
): SampleConfig {
  const { values } = parseArgs({
    args: argv,
    strict: false,
    options: {
      port: { type: 'string' },
      db: { type: 'string' },
      instance: { type: 'string' },
      'work-ms': { type: 'string' },
      'ttl-ms': { type: 'string' },
      'acquire-timeout-ms': { type: 'string' },
    },
  });
  const flag = (name: string): string | undefined => {
    const value = values[name];
    return typeof value === 'string' ? value : undefined;
  };
  return {
    instance: flag('instance') ?? env.SAMPLE_INSTANCE ?? `${hostname()}:${process.pid}`,
    port: integer('port', flag('port') ?? env.PORT, 3000),
    databaseUrl: flag('db') ?? env.DATABASE_URL ?? 'sample.sqlite',
    tablePrefix: env.SAMPLE_TABLE_PREFIX ?? '',
    workMs: integer('work-ms', flag('work-ms') ?? env.SAMPLE_WORK_MS, 1_500),
    ttlMs: integer('ttl-ms', flag('ttl-ms') ?? env.SAMPLE_TTL_MS, 5_000),
    acquireTimeoutMs: integer(
      'acquire-timeout-ms',
      flag('acquire-timeout-ms') ?? env.SAMPLE_ACQUIRE_TIMEOUT_MS,
      30_000,
    ),
    auditEnabled: env.SAMPLE_AUDIT !== 'off',
  };
}

function integer(what: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) {
    throw new Error(`The sample's ${what} must be a non-negative integer; got "${raw}".`);
  }
  return value;
}

/**
 * The configuration of this process. Read once at startup, because decorator arguments
 * (`@WithRemoteLock(…, { ttlMs })`, `@Entity(name)`) are evaluated when classes are defined.
 */
export const SAMPLE_CONFIG = loadSampleConfig();
