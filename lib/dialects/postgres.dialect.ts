import type { DataSource } from 'typeorm';
import type {
  AcquireCommand,
  AcquireResult,
  LockDialect,
  ReleaseCommand,
  StoredLock,
} from './dialect.interface';
import { toNumber, toStoredLock } from './dialect.utils';

interface PgPool {
  query(config: { name?: string; text: string; values?: unknown[] }): Promise<{
    rows: Record<string, unknown>[];
    rowCount: number | null;
  }>;
}

/** The database clock, in microseconds since the Unix epoch, at the moment it is read. */
const NOW = `(extract(epoch FROM clock_timestamp()) * 1000000)::bigint`;
const COLUMNS = `t.name, t.token, t.fence, t.holder, t.acquired_at, t.expires_at, t.released_at, t.last_outcome, t.last_error`;

/**
 * PostgreSQL (and CockroachDB) through `pg`, on the pool TypeORM already opened.
 * Every statement is one autocommit round trip, prepared once per connection.
 */
export class PostgresDialect implements LockDialect {
  readonly database = 'PostgreSQL';
  private readonly sql: ReturnType<typeof statements>;
  private readonly pool: PgPool;

  constructor(dataSource: DataSource, tableName: string) {
    const schema = (dataSource.options as { schema?: string }).schema;
    const qualified = tableName.includes('.') || !schema ? tableName : `${schema}.${tableName}`;
    const table = qualified
      .split('.')
      .map((part) => `"${part}"`)
      .join('.');
    this.sql = statements(table, qualified);
    this.pool = (dataSource.driver as unknown as { master: PgPool }).master;
  }

  async init(): Promise<boolean> {
    try {
      await this.pool.query({ text: this.sql.probe.text });
      return true;
    } catch (error) {
      if ((error as { code?: string }).code === '42P01') return false;
      throw error;
    }
  }

  async acquire(command: AcquireCommand): Promise<AcquireResult> {
    const { key, token, holder, ttlMs, leaseExpiredMessage, name } = command;
    const { rows } = await this.pool.query({
      ...this.sql.acquire,
      values: [key, token, holder, ttlMs, leaseExpiredMessage],
    });
    const row = rows[0];
    if (row === undefined) {
      const inserted = await this.pool.query({
        ...this.sql.insert,
        values: [key, name, token, holder, ttlMs],
      });
      const fresh = inserted.rows[0];
      return fresh === undefined
        ? { acquired: false, expiresAtUs: null, nowUs: null }
        : granted(fresh);
    }
    if (row.acquired) return granted(row);
    return { acquired: false, expiresAtUs: toNumber(row.expires_at), nowUs: toNumber(row.now) };
  }

  async extend(key: string, token: string, ttlMs: number): Promise<number | null> {
    const { rows } = await this.pool.query({ ...this.sql.extend, values: [key, token, ttlMs] });
    return rows[0] === undefined ? null : toNumber(rows[0].expires_at);
  }

  async release(command: ReleaseCommand): Promise<boolean> {
    const { rowCount } = await this.pool.query({
      ...this.sql.release,
      values: [command.key, command.token, command.outcome, command.error],
    });
    return rowCount === 1;
  }

  async forceRelease(key: string, error: string): Promise<boolean> {
    const { rowCount } = await this.pool.query({ ...this.sql.forceRelease, values: [key, error] });
    return rowCount === 1;
  }

  async inspect(key: string): Promise<StoredLock | null> {
    const { rows } = await this.pool.query({ ...this.sql.inspect, values: [key] });
    return rows[0] === undefined ? null : toStoredLock(rows[0]);
  }

  async list(): Promise<StoredLock[]> {
    const { rows } = await this.pool.query({ ...this.sql.list });
    return rows.map(toStoredLock);
  }

  async purge(olderThanMs: number): Promise<number> {
    const { rowCount } = await this.pool.query({ ...this.sql.purge, values: [olderThanMs] });
    return rowCount ?? 0;
  }

  async close(): Promise<void> {
    // The pool belongs to TypeORM, which closes it.
  }
}

function granted(row: Record<string, unknown>): AcquireResult {
  return {
    acquired: true,
    fence: toNumber(row.fence),
    acquiredAtUs: toNumber(row.acquired_at),
    expiresAtUs: toNumber(row.expires_at),
    lastOutcome: (row.last_outcome as never) ?? null,
    lastError: (row.last_error as string | null) ?? null,
  };
}

function statements(table: string, id: string) {
  const named = (suffix: string, text: string) => ({ name: `rlock:${id}:${suffix}`, text });
  return {
    probe: named('probe', `SELECT 1 FROM ${table} WHERE false`),
    // A conditional UPDATE writes nothing when the lock is held; the second branch reports
    // the holder's lease end so that a waiter knows when it could expire.
    acquire: named(
      'acquire',
      `WITH c AS (SELECT ${NOW} AS now),
       g AS (
         UPDATE ${table} AS t SET
           last_outcome = CASE WHEN t.token IS NULL THEN t.last_outcome ELSE 'expired' END,
           last_error = CASE WHEN t.token IS NULL THEN t.last_error ELSE json_build_object(
             'type', 'LeaseExpiredError', 'name', 'LeaseExpiredError', 'message', $5::text,
             'fields', json_build_object('holder', t.holder, 'fence', t.fence, 'expiredAt', t.expires_at / 1000))::text END,
           token = $2, holder = $3, fence = t.fence + 1,
           acquired_at = c.now, expires_at = c.now + $4::bigint * 1000
         FROM c
         WHERE t.id = $1 AND (t.token IS NULL OR t.expires_at <= c.now)
         RETURNING t.fence, t.acquired_at, t.expires_at, t.last_outcome, t.last_error
       )
       SELECT true AS acquired, g.fence, g.acquired_at, g.expires_at, g.last_outcome, g.last_error, NULL::bigint AS now FROM g
       UNION ALL
       SELECT false, t.fence, NULL, t.expires_at, NULL, NULL, c.now FROM ${table} AS t, c
       WHERE t.id = $1 AND NOT EXISTS (SELECT 1 FROM g)`,
    ),
    // First use of a name: the fence starts from the clock so that a row created again
    // after a purge never goes below the fences handed out before.
    insert: named(
      'insert',
      `WITH c AS (SELECT ${NOW} AS now)
       INSERT INTO ${table} (id, name, token, holder, fence, acquired_at, expires_at)
       SELECT $1, $2, $3, $4, c.now, c.now, c.now + $5::bigint * 1000 FROM c
       ON CONFLICT (id) DO NOTHING
       RETURNING fence, acquired_at, expires_at, last_outcome, last_error`,
    ),
    extend: named(
      'extend',
      `WITH c AS (SELECT ${NOW} AS now)
       UPDATE ${table} AS t SET expires_at = c.now + $3::bigint * 1000 FROM c
       WHERE t.id = $1 AND t.token = $2 AND t.expires_at > c.now
       RETURNING t.expires_at`,
    ),
    release: named(
      'release',
      `WITH c AS (SELECT ${NOW} AS now)
       UPDATE ${table} AS t SET token = NULL, last_outcome = $3, last_error = $4, released_at = c.now FROM c
       WHERE t.id = $1 AND t.token = $2`,
    ),
    forceRelease: named(
      'force-release',
      `WITH c AS (SELECT ${NOW} AS now)
       UPDATE ${table} AS t SET token = NULL, fence = t.fence + 1, last_outcome = 'force-released',
         last_error = $2, released_at = c.now FROM c
       WHERE t.id = $1 AND t.token IS NOT NULL`,
    ),
    inspect: named(
      'inspect',
      `SELECT ${COLUMNS}, ${NOW} AS now FROM ${table} AS t WHERE t.id = $1`,
    ),
    list: named('list', `SELECT ${COLUMNS}, ${NOW} AS now FROM ${table} AS t ORDER BY t.name`),
    purge: named(
      'purge',
      `WITH c AS (SELECT ${NOW} - $1::bigint * 1000 AS cutoff)
       DELETE FROM ${table} AS t USING c
       WHERE (t.token IS NULL AND COALESCE(t.released_at, t.acquired_at, 0) < c.cutoff)
          OR (t.token IS NOT NULL AND t.expires_at < c.cutoff)`,
    ),
  };
}
