import { createHash } from 'node:crypto';
import type { DataSource, QueryRunner } from 'typeorm';
import { waiterTableName } from '../entities/rlock-waiter.entity';
import { SCHEMA_ROW } from '../entities/schema-version';
import type { Doorbell } from '../waiting/doorbell.interface';
import { PostgresDoorbell, type PgListenClient } from '../waiting/postgres-doorbell';
import type {
  AcquireCommand,
  AcquireResult,
  EnqueueCommand,
  LockDialect,
  Place,
  ReleaseCommand,
  ReleaseResult,
  StoredLock,
} from './dialect.interface';
import { toNullableNumber, toNumber, toStoredLock } from './dialect.utils';

interface PgPool {
  /** The client class and connection options of the pool (pg-pool). */
  Client?: new (options: unknown) => PgListenClient;
  options?: unknown;
  query(config: { name?: string; text: string; values?: unknown[] }): Promise<{
    rows: Record<string, unknown>[];
    rowCount: number | null;
  }>;
}

/** The database clock, in microseconds since the Unix epoch, at the moment it is read. */
const NOW = `(extract(epoch FROM clock_timestamp()) * 1000000)::bigint`;
const COLUMNS = `t.name, t.token, t.fence, t.holder, t.acquired_at, t.expires_at, t.released_at, t.last_outcome, t.last_error, t.hold_until, t.hold_limit, t.last_tick_at`;

/**
 * PostgreSQL (and CockroachDB) through `pg`, on the pool TypeORM already opened.
 * Every statement is one autocommit round trip, prepared once per connection. A release
 * hands the lock to the first live place of its line in the same statement and notifies
 * that place's process (delivered when it commits); see `PostgresDoorbell`.
 */
export class PostgresDialect implements LockDialect {
  readonly database = 'PostgreSQL';
  private readonly pool: PgPool;
  private readonly master: PgPool;
  /** Prefix of the notification channels of this lock table (a process's owner completes it). */
  private readonly channelPrefix: string;
  /** Whether a release notifies the process it hands the lock to (CockroachDB cannot). */
  private notifies: boolean;
  private sql: ReturnType<typeof statements>;
  private readonly statementsOf: (notifies: boolean) => ReturnType<typeof statements>;
  /** Renewals run on a connection of their own (see `useLeaseConnection`). */
  private leaseEnabled = false;
  private lease: Promise<PgPool> | undefined;
  private leaseClient: PgListenClient | undefined;

  constructor(
    readonly dataSource: DataSource,
    tableName: string,
  ) {
    const schema = (dataSource.options as { schema?: string }).schema;
    const qualified = tableName.includes('.') || !schema ? tableName : `${schema}.${tableName}`;
    const quote = (name: string) =>
      name
        .split('.')
        .map((part) => `"${part}"`)
        .join('.');
    this.channelPrefix = `rlock_${createHash('sha256').update(qualified).digest('hex').slice(0, 12)}_`;
    // CockroachDB has no LISTEN/NOTIFY: its waiters poll (see also init()).
    this.notifies = dataSource.options.type !== 'cockroachdb';
    this.statementsOf = (notifies) =>
      statements(quote(qualified), quote(waiterTableName(qualified)), qualified, notifies);
    this.sql = this.statementsOf(this.notifies);
    this.master = (dataSource.driver as unknown as { master: PgPool }).master;
    this.pool = retryingConflicts(unnamedBehindPooler(this.master));
  }

  async init(): Promise<boolean> {
    // A CockroachDB server reached through `type: 'postgres'`: no NOTIFY in the release.
    const { rows } = await this.pool.query({ text: 'SELECT version() AS version' });
    if (this.notifies && /cockroach/i.test(String(rows[0]?.version))) {
      this.notifies = false;
      this.sql = this.statementsOf(false);
    }
    return this.probe();
  }

  createDoorbell(): Doorbell | undefined {
    const { Client, options } = this.master;
    if (!Client || !this.notifies) return undefined;
    return new PostgresDoorbell(
      () => new Client(options),
      async (channel, payload) => {
        await this.pool.query({
          text: 'SELECT pg_notify($1::text, $2::text)',
          values: [channel, payload],
        });
      },
      this.channelPrefix,
    );
  }

  async schemaVersion(current: number): Promise<number> {
    let rows: Record<string, unknown>[];
    try {
      ({ rows } = await this.pool.query({ ...this.sql.schemaVersion, values: [SCHEMA_ROW.token] }));
    } catch (error) {
      if ((error as { code?: string }).code === '42P01') return 1;
      throw error;
    }
    if (rows[0] !== undefined) return toNumber(rows[0].queued_at);
    const r = SCHEMA_ROW;
    await this.pool.query({
      ...this.sql.stampSchema,
      values: [r.token, r.lockId, r.holder, r.ttlMs, r.owner, current, r.expiresAt],
    });
    return current;
  }

  async probe(): Promise<boolean> {
    try {
      await this.pool.query({ text: this.sql.probe.text });
      return true;
    } catch (error) {
      if ((error as { code?: string }).code === '42P01') return false;
      throw error;
    }
  }

  async acquire(command: AcquireCommand): Promise<AcquireResult> {
    const { key, token, holder, ttlMs, leaseExpiredMessage, name, place } = command;
    const { holdLimitMessage, maxHoldMs, oncePerMs } = command;
    const { rows } = await this.pool.query({
      ...(place === null ? this.sql.acquire : this.sql.acquireFromPlace),
      values: [
        key,
        token,
        holder,
        ttlMs,
        leaseExpiredMessage,
        ...ahead(place),
        holdLimitMessage,
        maxHoldMs,
        oncePerMs,
      ],
    });
    const row = rows[0];
    if (row === undefined) {
      const inserted = await this.pool.query({
        ...this.sql.insert,
        values: [key, name, token, holder, ttlMs, maxHoldMs, oncePerMs],
      });
      const fresh = inserted.rows[0];
      return fresh === undefined
        ? { acquired: false, expiresAtUs: null, nowUs: null }
        : granted(fresh);
    }
    if (row.acquired) return granted(row);
    // No lease end when the lock is free (a live place ahead of this caller takes it).
    const expiresAtUs = row.expires_at === null ? null : toNumber(row.expires_at);
    return { acquired: false, expiresAtUs, nowUs: toNumber(row.now) };
  }

  async enqueue(command: EnqueueCommand): Promise<Place> {
    const { key, token, holder, ttlMs, owner, doorbell, placeTtlMs, maxHoldMs } = command;
    const { rows } = await this.pool.query({
      ...this.sql.enqueue,
      values: [key, token, holder, ttlMs, owner, doorbell, placeTtlMs, maxHoldMs],
    });
    return { token, queuedAtUs: toNumber(rows[0].queued_at) };
  }

  async leaveLine(token: string): Promise<boolean> {
    const { rowCount } = await this.pool.query({ ...this.sql.leaveLine, values: [token] });
    return rowCount === 1;
  }

  async renewPlaces(
    owner: string,
    placeTtlMs: number,
    doorbell: string | null,
    expected: number,
  ): Promise<string[] | number> {
    const { rows } = await this.pool.query({
      ...this.sql.renewPlaces,
      values: [owner, placeTtlMs, doorbell],
    });
    return rows.length < expected ? rows.map((row) => String(row.token)) : rows.length;
  }

  async readLocks(keys: readonly string[]): Promise<Map<string, StoredLock>> {
    const { rows } = await this.pool.query({ ...this.sql.readLocks, values: [keys] });
    return new Map(rows.map((row) => [String(row.id), toStoredLock(row)]));
  }

  async extend(key: string, token: string, ttlMs: number, revive = false): Promise<number | null> {
    const via = await this.leaseConnection().catch(() => this.pool);
    const statement = revive ? this.sql.revive : this.sql.extend;
    const { rows } = await via.query({ ...statement, values: [key, token, ttlMs] });
    return rows[0] === undefined ? null : toNumber(rows[0].expires_at);
  }

  useLeaseConnection(): void {
    this.leaseEnabled = this.master.Client !== undefined;
  }

  /** The connection renewals run on: the dialect's own when enabled (reconnected when lost), else the pool. */
  private leaseConnection(): Promise<PgPool> {
    if (!this.leaseEnabled) return Promise.resolve(this.pool);
    if (this.lease === undefined) {
      const { Client, options } = this.master;
      const client = new Client!(options);
      const lost = () => {
        if (this.lease === opened) this.lease = undefined;
        void client.end().catch(() => undefined);
      };
      client.on('error', lost);
      client.on('end', lost);
      const opened = client.connect().then(() => {
        this.leaseClient = client;
        return retryingConflicts(unnamedBehindPooler(client as unknown as PgPool));
      });
      opened.catch(lost);
      this.lease = opened;
    }
    return this.lease;
  }

  async release(command: ReleaseCommand): Promise<ReleaseResult> {
    const { key, token, outcome, error, handoffLeaseMs, minHoldMs } = command;
    const { rows } = await this.pool.query({
      ...this.sql.release,
      values: [key, token, outcome, error, handoffLeaseMs, this.channelPrefix, minHoldMs],
    });
    const row = rows[0];
    if (row === undefined) return { released: false, handedTo: null };
    const result: ReleaseResult = {
      released: true,
      handedTo: (row.next_owner as string | null) ?? null,
    };
    if (row.hold_until !== null) result.holdUntilUs = toNumber(row.hold_until);
    return result;
  }

  async releaseWithin(
    runner: QueryRunner,
    command: ReleaseCommand,
  ): Promise<{ result: ReleaseResult; afterCommit?: () => void }> {
    const { key, token, outcome, error, handoffLeaseMs, minHoldMs } = command;
    // The same statement, unnamed, on the transaction's own client: its NOTIFY is delivered
    // when the caller commits.
    const client = (runner as unknown as { databaseConnection: PgPool }).databaseConnection;
    const { rows } = await client.query({
      text: this.sql.release.text,
      values: [key, token, outcome, error, handoffLeaseMs, this.channelPrefix, minHoldMs],
    });
    const row = rows[0];
    if (row === undefined) return { result: { released: false, handedTo: null } };
    const result: ReleaseResult = {
      released: true,
      handedTo: (row.next_owner as string | null) ?? null,
    };
    if (row.hold_until !== null) result.holdUntilUs = toNumber(row.hold_until);
    return { result };
  }

  async forceRelease(key: string, error: string, fence?: number): Promise<boolean> {
    const { rowCount } = await this.pool.query({
      ...this.sql.forceRelease,
      values: [key, error, fence ?? null],
    });
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
    // The pool belongs to TypeORM, which closes it; the lease connection is ours.
    this.leaseEnabled = false;
    this.lease = undefined;
    await this.leaseClient?.end().catch(() => undefined);
    this.leaseClient = undefined;
  }
}

/** Parameters of the line condition: a place's (queued_at, token), or "any place" for a newcomer. */
function ahead(place: Place | null): unknown[] {
  return place === null ? [Number.MAX_SAFE_INTEGER, ''] : [place.queuedAtUs, place.token];
}

/**
 * Named (prepared) statements live in a server session. Behind a transaction-pooling proxy
 * (PgBouncer before 1.21) client connections share server sessions, so a name is found
 * "already existing" (42P05) or "not existing" (26000); both fail before the statement
 * runs. From the first such error on, this pool sends every statement unnamed.
 */
function unnamedBehindPooler(pool: PgPool): PgPool {
  let named = true;
  return {
    async query(config) {
      if (!named) return pool.query({ text: config.text, values: config.values });
      try {
        return await pool.query(config);
      } catch (error) {
        const code = (error as { code?: string }).code;
        if (code !== '42P05' && code !== '26000') throw error;
        named = false;
        return pool.query({ text: config.text, values: config.values });
      }
    },
  };
}

/** Serialization failure and deadlock: the statement's implicit transaction was rolled back. */
const RETRYABLE = new Set(['40001', '40P01']);
const MAX_RETRIES = 5;

/**
 * Runs a statement again after a serialization failure (SERIALIZABLE isolation, and always
 * on CockroachDB) or a deadlock: each statement is its own transaction, rolled back whole.
 */
function retryingConflicts(pool: PgPool): PgPool {
  return {
    async query(config) {
      for (let attempt = 0; ; attempt++) {
        try {
          return await pool.query(config);
        } catch (error) {
          const code = (error as { code?: string }).code ?? '';
          if (attempt >= MAX_RETRIES || !RETRYABLE.has(code)) throw error;
        }
      }
    },
  };
}

function granted(row: Record<string, unknown>): AcquireResult {
  return {
    acquired: true,
    fence: toNumber(row.fence),
    acquiredAtUs: toNumber(row.acquired_at),
    expiresAtUs: toNumber(row.expires_at),
    lastOutcome: (row.last_outcome as never) ?? null,
    lastError: (row.last_error as string | null) ?? null,
    holdLimitUs: toNullableNumber(row.hold_limit),
  };
}

/**
 * The attempt: grants a free or expired lock when no live place is ahead of the caller
 * ($6, $7: the caller's place, or "any place" for a newcomer), removing the caller's place.
 */
function acquireStatement(table: string, waiters: string, fromPlace: boolean): string {
  // $9: the grant's hold limit in ms (or null); $10: the period of `oncePer` in ms (or null).
  const tick = `(${NOW} / ($10::bigint * 1000)) * ($10::bigint * 1000)`;
  const overran = `(t.hold_limit IS NOT NULL AND t.expires_at >= t.hold_limit)`;
  return `WITH c AS (SELECT ${NOW} AS now),
       g AS (
         UPDATE ${table} AS t SET
           last_outcome = CASE WHEN t.token IS NULL THEN t.last_outcome
             WHEN ${overran} THEN 'overran' ELSE 'expired' END,
           last_error = CASE WHEN t.token IS NULL THEN t.last_error
             WHEN ${overran} THEN json_build_object(
               'type', 'HoldLimitExceededError', 'name', 'HoldLimitExceededError', 'code', 'RLOCK_HOLD_LIMIT', 'message', $8::text,
               'fields', json_build_object('holder', t.holder, 'fence', t.fence, 'limitAt', t.hold_limit / 1000))::text
             ELSE json_build_object(
               'type', 'LeaseExpiredError', 'name', 'LeaseExpiredError', 'code', 'RLOCK_LEASE_EXPIRED', 'message', $5::text,
               'fields', json_build_object('holder', t.holder, 'fence', t.fence, 'expiredAt', t.expires_at / 1000))::text END,
           token = $2, holder = $3, fence = t.fence + 1,
           acquired_at = ${NOW},
           expires_at = ${NOW} + LEAST($4::bigint, COALESCE($9::bigint, $4::bigint)) * 1000,
           hold_limit = ${NOW} + $9::bigint * 1000,
           hold_until = NULL,
           last_tick_at = CASE WHEN $10::bigint IS NULL THEN t.last_tick_at ELSE ${tick} END
         FROM c
         -- The clock is read again here, not taken from c: after waiting for a concurrent
         -- release's row lock, the re-check and the new lease use the time of the grant.
         WHERE t.id = $1 AND (t.token IS NULL OR t.expires_at <= ${NOW})
           AND (t.hold_until IS NULL OR t.hold_until <= ${NOW})
           AND ($10::bigint IS NULL OR t.last_tick_at IS NULL OR t.last_tick_at < ${tick})
           AND NOT EXISTS (
             SELECT 1 FROM ${waiters} AS q
             WHERE q.lock_id = $1 AND q.expires_at > c.now
               AND (q.queued_at < $6::bigint OR (q.queued_at = $6::bigint AND q.token < $7::text)))
         RETURNING t.fence, t.acquired_at, t.expires_at, t.last_outcome, t.last_error, t.hold_limit
       )${fromPlace ? `, d AS (DELETE FROM ${waiters} AS q WHERE q.token = $2 AND EXISTS (SELECT 1 FROM g))` : ''}
       SELECT true AS acquired, g.fence, g.acquired_at, g.expires_at, g.last_outcome, g.last_error, g.hold_limit, NULL::bigint AS now FROM g
       UNION ALL
       SELECT false, t.fence, NULL,
         CASE WHEN t.token IS NOT NULL THEN t.expires_at WHEN t.hold_until > c.now THEN t.hold_until END,
         NULL, NULL, NULL, c.now
       FROM ${table} AS t, c
       WHERE t.id = $1 AND NOT EXISTS (SELECT 1 FROM g)`;
}

function statements(table: string, waiters: string, id: string, notifies: boolean) {
  const named = (suffix: string, text: string) => ({ name: `rlock:${id}:${suffix}`, text });
  return {
    probe: named('probe', `SELECT 1 FROM ${table} WHERE false`),
    schemaVersion: named('schema-version', `SELECT queued_at FROM ${waiters} WHERE token = $1`),
    stampSchema: named(
      'stamp-schema',
      `INSERT INTO ${waiters} (token, lock_id, holder, ttl_ms, owner, queued_at, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (token) DO NOTHING`,
    ),
    // A conditional UPDATE writes nothing when the lock is held; the second branch reports
    // the holder's lease end so that a waiter knows when it could expire.
    acquire: named('acquire', acquireStatement(table, waiters, false)),
    // The same from a place in line, which it removes when granted.
    acquireFromPlace: named('acquire-from-place', acquireStatement(table, waiters, true)),
    // First use of a name: the fence starts from the clock so that a row created again
    // after a purge never goes below the fences handed out before.
    insert: named(
      'insert',
      `WITH c AS (SELECT ${NOW} AS now)
       INSERT INTO ${table} (id, name, token, holder, fence, acquired_at, expires_at, hold_limit, last_tick_at)
       SELECT $1, $2, $3, $4, c.now, c.now, c.now + LEAST($5::bigint, COALESCE($6::bigint, $5::bigint)) * 1000,
         c.now + $6::bigint * 1000, (c.now / ($7::bigint * 1000)) * ($7::bigint * 1000) FROM c
       ON CONFLICT (id) DO NOTHING
       RETURNING fence, acquired_at, expires_at, last_outcome, last_error, hold_limit`,
    ),
    extend: named(
      'extend',
      `WITH c AS (SELECT ${NOW} AS now)
       UPDATE ${table} AS t
       SET expires_at = LEAST(c.now + $3::bigint * 1000, COALESCE(t.hold_limit, c.now + $3::bigint * 1000))
       FROM c
       WHERE t.id = $1 AND t.token = $2 AND t.expires_at > c.now
       RETURNING t.expires_at`,
    ),
    revive: named(
      'revive',
      `WITH c AS (SELECT ${NOW} AS now)
       UPDATE ${table} AS t
       SET expires_at = LEAST(c.now + $3::bigint * 1000, COALESCE(t.hold_limit, c.now + $3::bigint * 1000))
       FROM c
       WHERE t.id = $1 AND t.token = $2 AND (t.hold_limit IS NULL OR t.hold_limit > c.now)
       RETURNING t.expires_at`,
    ),
    // The release and the hand-off in one statement: the first live place of the line (w)
    // gets the lock (fence + 1, its token and a short lease until it renews), the outcome is
    // stored for it ('pass' keeps the stored one), its place is removed and its process is
    // notified on commit. Without a live place the lock is freed. One row when released.
    release: named(
      'release',
      `WITH c AS (SELECT ${NOW} AS now),
       -- No hand-off while a minimum hold ($7 ms after the grant) keeps the lock taken.
       w AS (
         SELECT q.token, q.holder, q.ttl_ms, q.max_hold_ms, q.owner FROM ${waiters} AS q, c
         WHERE q.lock_id = $1 AND q.expires_at > c.now
           AND NOT EXISTS (SELECT 1 FROM ${table} AS h
             WHERE h.id = $1 AND h.token = $2 AND h.acquired_at + $7::bigint * 1000 > c.now)
         ORDER BY q.queued_at, q.token LIMIT 1
         FOR UPDATE OF q
       ),
       r AS (
         UPDATE ${table} AS t SET
           token = w.token,
           holder = COALESCE(w.holder, t.holder),
           fence = CASE WHEN w.token IS NULL THEN t.fence ELSE t.fence + 1 END,
           acquired_at = CASE WHEN w.token IS NULL THEN t.acquired_at ELSE c.now END,
           expires_at = CASE WHEN w.token IS NULL THEN t.expires_at
             ELSE c.now + LEAST(w.ttl_ms, $5::bigint, COALESCE(w.max_hold_ms, w.ttl_ms)) * 1000 END,
           hold_limit = CASE WHEN w.token IS NULL THEN t.hold_limit ELSE c.now + w.max_hold_ms * 1000 END,
           hold_until = CASE WHEN t.acquired_at + $7::bigint * 1000 > c.now THEN t.acquired_at + $7::bigint * 1000 END,
           last_outcome = CASE WHEN $3::text = 'pass' THEN t.last_outcome ELSE $3::text END,
           last_error = CASE WHEN $3::text = 'pass' THEN t.last_error ELSE $4::text END,
           released_at = c.now
         FROM c LEFT JOIN w ON true
         WHERE t.id = $1 AND t.token = $2
         RETURNING w.token AS next_token, w.owner AS next_owner, t.hold_until
       ),
       d AS (DELETE FROM ${waiters} AS q USING r WHERE q.token = r.next_token)
       ${
         notifies
           ? `, n AS (SELECT pg_notify($6::text || r.next_owner, r.next_token) FROM r WHERE r.next_token IS NOT NULL)
       SELECT r.next_owner, r.hold_until, (SELECT count(*) FROM n) AS rung FROM r`
           : `SELECT r.next_owner, r.hold_until, $6::text AS channel FROM r`
       }`,
    ),
    forceRelease: named(
      'force-release',
      `WITH c AS (SELECT ${NOW} AS now)
       UPDATE ${table} AS t SET token = NULL, fence = t.fence + 1, last_outcome = 'force-released',
         last_error = $2, released_at = c.now FROM c
       WHERE t.id = $1 AND t.token IS NOT NULL AND ($3::bigint IS NULL OR t.fence = $3::bigint)`,
    ),
    // A place at the end of the line; the line's dead places are cleared on the way.
    enqueue: named(
      'enqueue',
      `WITH c AS (SELECT ${NOW} AS now),
       x AS (DELETE FROM ${waiters} AS q USING c WHERE q.lock_id = $1 AND q.expires_at <= c.now)
       INSERT INTO ${waiters} (token, lock_id, holder, ttl_ms, max_hold_ms, owner, doorbell, queued_at, expires_at)
       SELECT $2, $1, $3, $4, $8, $5, $6, c.now, c.now + $7::bigint * 1000 FROM c
       RETURNING queued_at`,
    ),
    leaveLine: named('leave-line', `DELETE FROM ${waiters} WHERE token = $1`),
    renewPlaces: named(
      'renew-places',
      `UPDATE ${waiters} SET expires_at = ${NOW} + $2::bigint * 1000, doorbell = $3
       WHERE owner = $1 RETURNING token`,
    ),
    readLocks: named(
      'read-locks',
      `SELECT t.id, ${COLUMNS}, ${NOW} AS now FROM ${table} AS t WHERE t.id = ANY($1::text[])`,
    ),
    inspect: named(
      'inspect',
      `SELECT ${COLUMNS}, ${NOW} AS now FROM ${table} AS t WHERE t.id = $1`,
    ),
    list: named('list', `SELECT ${COLUMNS}, ${NOW} AS now FROM ${table} AS t ORDER BY t.name`),
    // Released rows only: an expired holder's row keeps its outcome for the next holder.
    purge: named(
      'purge',
      `WITH c AS (SELECT ${NOW} - $1::bigint * 1000 AS cutoff, ${NOW} AS now),
       x AS (DELETE FROM ${waiters} AS q USING c WHERE q.expires_at <= c.now)
       DELETE FROM ${table} AS t USING c
       WHERE t.token IS NULL AND COALESCE(t.released_at, t.acquired_at, 0) < c.cutoff
         AND NOT EXISTS (SELECT 1 FROM ${waiters} AS q WHERE q.lock_id = t.id AND q.expires_at > c.now)`,
    ),
  };
}
