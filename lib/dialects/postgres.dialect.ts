import { createHash, randomBytes } from 'node:crypto';
import type { DataSource } from 'typeorm';
import type {
  AcquireCommand,
  AcquireResult,
  LockDialect,
  ReleaseCommand,
  StoredLock,
  WakeUp,
} from './dialect.interface';
import { toNumber, toStoredLock } from './dialect.utils';
import { PostgresReleaseListener } from './postgres-release-listener';
import {
  keyTag,
  postgresQueueSession,
  type PgQueueClient,
  type PgQueueSession,
} from './postgres-wait-queue';
import { HANDOFF_RESERVE_MS, WaitQueue } from './wait-queue';

interface PgPool {
  /** The client class and connection options of the pool (pg-pool). */
  Client?: new (options: unknown) => PgQueueClient;
  options?: unknown;
  query(config: { name?: string; text: string; values?: unknown[] }): Promise<{
    rows: Record<string, unknown>[];
    rowCount: number | null;
  }>;
}

/** The database clock, in microseconds since the Unix epoch, at the moment it is read. */
const NOW = `(extract(epoch FROM clock_timestamp()) * 1000000)::bigint`;
/** The row is free (never taken, released) or its lease has run out, at `c.now`. */
const FREE = `(t.token IS NULL OR t.expires_at <= c.now)`;
const COLUMNS = `t.name, t.token, t.fence, t.holder, t.acquired_at, t.expires_at, t.released_at, t.last_outcome, t.last_error`;

/**
 * PostgreSQL (and CockroachDB) through `pg`, on the pool TypeORM already opened.
 * Every statement is one autocommit round trip, prepared once per connection.
 * A release notifies (NOTIFY in the same statement) and one dedicated connection per
 * dialect LISTENs, so waiters wake at once instead of polling.
 */
export class PostgresDialect implements LockDialect {
  readonly database = 'PostgreSQL';
  private readonly sql: ReturnType<typeof statements>;
  private readonly pool: PgPool;
  /** Prefix of the notification channels of this lock table's locks (the same in every process). */
  private readonly channelPrefix: string;
  /** Channel → key of the locks this process listens for. */
  private readonly listenedKeys = new Map<string, string>();
  /** Tags this process's notifications, so that it ignores its own releases. */
  private readonly instance = randomBytes(6).toString('hex');
  private listener: PostgresReleaseListener | undefined;
  private waitQueue: WaitQueue<PgQueueSession> | undefined;
  /** Namespace of this lock table in the two-key advisory lock space (the wait queue's). */
  private readonly tableTag: number;
  private released: ((key: string) => void) | undefined;

  constructor(dataSource: DataSource, tableName: string) {
    const schema = (dataSource.options as { schema?: string }).schema;
    const qualified = tableName.includes('.') || !schema ? tableName : `${schema}.${tableName}`;
    const table = qualified
      .split('.')
      .map((part) => `"${part}"`)
      .join('.');
    this.sql = statements(table, qualified);
    const master = (dataSource.driver as unknown as { master: PgPool }).master;
    this.pool = retryingConflicts(unnamedBehindPooler(master));
    this.tableTag = keyTag(createHash('sha256').update(`rlock-queue:${qualified}`).digest('hex'));
    this.channelPrefix = `rlock_${createHash('sha256').update(qualified).digest('hex').slice(0, 12)}_`;
    const { Client, options } = master;
    if (Client) {
      this.listener = new PostgresReleaseListener(
        () => new Client(options),
        (channel, payload) => this.notified(channel, payload),
        (channel) => this.wake(channel),
        async (channel) => {
          await this.pool.query({
            text: 'SELECT pg_notify($1::text, $2::text)',
            values: [channel, 'probe'],
          });
        },
        `${this.channelPrefix}probe_${this.instance}`,
      );
      const tableTag = keyTag(
        createHash('sha256').update(`rlock-queue:${qualified}`).digest('hex'),
      );
      this.waitQueue = new WaitQueue<PgQueueSession>(
        (onFailure) => {
          const client = new Client(options);
          const session = postgresQueueSession(client, tableTag, () => onFailure(session));
          return session;
        },
        (key) => this.released?.(key),
      );
    }
  }

  async init(): Promise<boolean> {
    if (!(await this.probe())) return false;
    // Not fatal when it fails: waiters poll until the listening connection reconnects.
    await this.listener?.start();
    return true;
  }

  onRelease(listener: (key: string) => void): void {
    this.released = listener;
  }

  queue(key: string): WakeUp {
    if (!this.listener?.listening) return 'polls';
    if (this.listenedKeys.has(this.channelOf(key))) return 'woken';
    // Not in line (full, or no connection): every release of this lock wakes it.
    if (!this.waitQueue?.enter(key)) this.listenFor(key);
    // First in line, the lock is still held: by a process that is not in line, whose
    // release does not call the next one. Hear that release. (Behind another process,
    // this one is called when its turn comes.)
    else if (this.waitQueue.placeOf(key) === 'first') this.listenFor(key);
    return 'woken';
  }

  dequeue(key: string): void {
    const channel = this.channelOf(key);
    if (this.listenedKeys.delete(channel)) this.listener?.unlisten(channel);
    this.waitQueue?.leave(key);
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
    const { key, token, holder, ttlMs, leaseExpiredMessage, name } = command;
    const values: unknown[] = [key, token, holder, ttlMs, leaseExpiredMessage];
    let statement = this.sql.acquire;
    if (this.waitQueue?.placeOf(key) === 'first') {
      // Called by the previous holder's release, which may not have committed yet: wait
      // for it on the row lock instead of missing it.
      statement = this.sql.acquireFirst;
    } else if (this.waitQueue !== undefined && this.listener?.listening === true) {
      statement = this.sql.acquireInLine;
      values.push(false, HANDOFF_RESERVE_MS, this.tableTag, keyTag(key));
    }
    const { rows } = await this.pool.query({ ...statement, values });
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
    // No lease end when the lock is free (kept for the first process in line).
    const expiresAtUs = row.expires_at === null ? null : toNumber(row.expires_at);
    return { acquired: false, expiresAtUs, nowUs: toNumber(row.now) };
  }

  async extend(key: string, token: string, ttlMs: number): Promise<number | null> {
    const { rows } = await this.pool.query({ ...this.sql.extend, values: [key, token, ttlMs] });
    return rows[0] === undefined ? null : toNumber(rows[0].expires_at);
  }

  async release(command: ReleaseCommand): Promise<boolean> {
    const values = [
      command.key,
      command.token,
      command.outcome,
      command.error,
      this.channelOf(command.key),
      this.instance,
    ];
    // First in line: release on the line's own session, giving its advisory lock up in the
    // same statement; the next process's attempt then waits for this commit on the row lock.
    const throughLine = this.waitQueue?.leaveThrough(
      command.key,
      async (session) =>
        (
          await retryingConflicts(session).query({
            ...this.sql.releaseInLine,
            values: [...values, this.tableTag, keyTag(command.key)],
          })
        ).rowCount === 1,
      (released) => released,
    );
    if (throughLine) return throughLine;
    const { rowCount } = await this.pool.query({ ...this.sql.release, values });
    return rowCount === 1;
  }

  async forceRelease(key: string, error: string): Promise<boolean> {
    const { rowCount } = await this.pool.query({
      ...this.sql.forceRelease,
      values: [key, error, this.channelOf(key), this.instance],
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
    // The pool belongs to TypeORM, which closes it; the listening connection is ours.
    this.waitQueue?.close();
    await this.listener?.close();
  }

  /** The notification channel of one lock: a release wakes only the processes waiting for it. */
  private channelOf(key: string): string {
    return `${this.channelPrefix}${key.slice(0, 40)}`;
  }

  private listenFor(key: string): void {
    const channel = this.channelOf(key);
    this.listenedKeys.set(channel, key);
    this.listener?.listen(channel);
  }

  /** A release of a lock this process waits for, by another process (its own releases wake its waiters directly). */
  private notified(channel: string, payload: string): void {
    if (payload !== this.instance) this.wake(channel);
  }

  /** Wakes this process's first waiter for the lock of `channel` to try again. */
  private wake(channel: string): void {
    const key = this.listenedKeys.get(channel);
    if (key !== undefined) this.released?.(key);
  }
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
  };
}

/** The attempt: grants a free or expired lock when `mayTake` (an SQL condition on `t`) holds. */
function acquireStatement(table: string, mayTake: string): string {
  return `WITH c AS (SELECT ${NOW} AS now),
       g AS (
         UPDATE ${table} AS t SET
           last_outcome = CASE WHEN t.token IS NULL THEN t.last_outcome ELSE 'expired' END,
           last_error = CASE WHEN t.token IS NULL THEN t.last_error ELSE json_build_object(
             'type', 'LeaseExpiredError', 'name', 'LeaseExpiredError', 'message', $5::text,
             'fields', json_build_object('holder', t.holder, 'fence', t.fence, 'expiredAt', t.expires_at / 1000))::text END,
           token = $2, holder = $3, fence = t.fence + 1,
           acquired_at = ${NOW}, expires_at = ${NOW} + $4::bigint * 1000
         FROM c
         -- The clock is read again here, not taken from c: after waiting for a concurrent
         -- grant's row lock, the re-check and the new lease use the time of the grant.
         WHERE t.id = $1 AND (t.token IS NULL OR t.expires_at <= ${NOW}) AND ${mayTake}
         RETURNING t.fence, t.acquired_at, t.expires_at, t.last_outcome, t.last_error
       )
       SELECT true AS acquired, g.fence, g.acquired_at, g.expires_at, g.last_outcome, g.last_error, NULL::bigint AS now FROM g
       UNION ALL
       SELECT false, t.fence, NULL, CASE WHEN t.token IS NULL THEN NULL ELSE t.expires_at END, NULL, NULL, c.now
       FROM ${table} AS t, c
       WHERE t.id = $1 AND NOT EXISTS (SELECT 1 FROM g)`;
}

function statements(table: string, id: string) {
  const named = (suffix: string, text: string) => ({ name: `rlock:${id}:${suffix}`, text });
  return {
    probe: named('probe', `SELECT 1 FROM ${table} WHERE false`),
    // A conditional UPDATE writes nothing when the lock is held; the second branch reports
    // the holder's lease end so that a waiter knows when it could expire.
    acquire: named('acquire', acquireStatement(table, 'true')),
    // The same while processes wait in line: a lock released less than $7 ms ago is kept
    // for the process first in line (it holds the line's advisory lock, so a shared try
    // fails) unless this process is that one ($6).
    acquireInLine: named(
      'acquire-in-line',
      acquireStatement(
        table,
        `CASE WHEN t.token IS NULL AND NOT $6::boolean AND t.released_at > ${NOW} - $7::bigint * 1000
           THEN pg_try_advisory_xact_lock_shared($8::int4, $9::int4) ELSE true END`,
      ),
    ),
    // The attempt of the process first in line, called by the previous holder's release
    // while it may still be committing. It matches the row whatever its state, so it waits
    // for that commit on the row lock and then decides on the row as committed; the
    // assignments keep a held row as it is. The clock is read once, before that wait: a
    // little early (the safe side for expiry and for the new lease), and still after the
    // previous release's own reading.
    acquireFirst: named(
      'acquire-first',
      `WITH c AS (SELECT ${NOW} AS now)
       UPDATE ${table} AS t SET
         last_outcome = CASE WHEN t.token IS NOT NULL AND t.expires_at <= c.now THEN 'expired' ELSE t.last_outcome END,
         last_error = CASE WHEN t.token IS NOT NULL AND t.expires_at <= c.now THEN json_build_object(
           'type', 'LeaseExpiredError', 'name', 'LeaseExpiredError', 'message', $5::text,
           'fields', json_build_object('holder', t.holder, 'fence', t.fence, 'expiredAt', t.expires_at / 1000))::text
           ELSE t.last_error END,
         token = CASE WHEN ${FREE} THEN $2 ELSE t.token END,
         holder = CASE WHEN ${FREE} THEN $3 ELSE t.holder END,
         fence = CASE WHEN ${FREE} THEN t.fence + 1 ELSE t.fence END,
         acquired_at = CASE WHEN ${FREE} THEN c.now ELSE t.acquired_at END,
         expires_at = CASE WHEN ${FREE} THEN c.now + $4::bigint * 1000 ELSE t.expires_at END
       FROM c
       WHERE t.id = $1
       RETURNING t.token = $2 AS acquired, t.fence, t.acquired_at, t.expires_at, t.last_outcome,
         t.last_error, c.now`,
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
    // The release notifies in the same statement (delivered when it commits), so that
    // waiters in other processes try again at once. One row when released, none otherwise.
    release: named(
      'release',
      `WITH c AS (SELECT ${NOW} AS now),
       r AS (
         UPDATE ${table} AS t SET token = NULL, last_outcome = $3, last_error = $4, released_at = c.now FROM c
         WHERE t.id = $1 AND t.token = $2
         RETURNING t.id
       )
       SELECT pg_notify($5::text, $6::text) FROM r`,
    ),
    // The release of the process first in line, on the line's session: gives the line's
    // advisory lock up in the same statement (calling the next process) when it released.
    releaseInLine: named(
      'release-in-line',
      `WITH c AS (SELECT ${NOW} AS now),
       r AS (
         UPDATE ${table} AS t SET token = NULL, last_outcome = $3, last_error = $4, released_at = c.now FROM c
         WHERE t.id = $1 AND t.token = $2
         RETURNING t.id
       )
       SELECT pg_notify($5::text, $6::text), pg_advisory_unlock($7::int4, $8::int4) FROM r`,
    ),
    forceRelease: named(
      'force-release',
      `WITH c AS (SELECT ${NOW} AS now),
       r AS (
         UPDATE ${table} AS t SET token = NULL, fence = t.fence + 1, last_outcome = 'force-released',
           last_error = $2, released_at = c.now FROM c
         WHERE t.id = $1 AND t.token IS NOT NULL
         RETURNING t.id
       )
       SELECT pg_notify($3::text, $4::text) FROM r`,
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
