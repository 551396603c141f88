import { performance } from 'node:perf_hooks';
import type { DataSource, QueryRunner } from 'typeorm';
import { waiterTableName } from '../entities/rlock-waiter.entity';
import { SCHEMA_ROW } from '../entities/schema-version';
import type { Doorbell } from '../waiting/doorbell.interface';
import { SocketDoorbell } from '../waiting/socket-doorbell';
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
import { RLockConfigurationError } from '../errors/rlock-configuration.error';
import { MESSAGES } from '../rlock.messages';
import { toStoredLock } from './dialect.utils';

type Row = Record<string, unknown>;
interface Statement {
  get(...params: unknown[]): Row | undefined;
  all(...params: unknown[]): Row[];
  run(...params: unknown[]): { changes: number };
  /** Rows as arrays of values (in the order of the columns) instead of objects. */
  raw(toggle: true): ValuesStatement;
}
interface ValuesStatement {
  get(...params: unknown[]): unknown[] | undefined;
}
interface Database {
  prepare(sql: string): Statement;
  pragma(sql: string): unknown;
  transaction<A extends unknown[], R>(fn: (...args: A) => R): { immediate(...args: A): R };
  close(): void;
  readonly open: boolean;
  readonly inTransaction: boolean;
}
type DatabaseConstructor = new (file: string, options?: { timeout?: number }) => Database;

/** The database clock, in microseconds since the Unix epoch (millisecond precision). */
const NOW = `(CAST(ROUND(unixepoch('subsec') * 1000) AS INTEGER) * 1000)`;
const COLUMNS =
  'name, token, fence, holder, acquired_at, expires_at, released_at, last_outcome, last_error, hold_until, hold_limit, last_tick_at';
/** How long a release, renewal or read keeps trying while another process writes. */
const BUSY_RETRY_MS = 10_000;

/**
 * SQLite through `better-sqlite3`. The module opens its own connection to the database
 * file (WAL, no busy wait: better-sqlite3 is synchronous and a busy wait would stall
 * the event loop), so lock statements never join a transaction the application has
 * open on TypeORM's connection. An in-memory database has one connection only, which
 * is then shared.
 */
export class SqliteDialect implements LockDialect {
  readonly database = 'SQLite';
  private db!: Database;
  private ownConnection = false;
  /** TypeORM's connection, when the module has one of its own (a database file). */
  private shared: Database | undefined;
  private sql!: ReturnType<SqliteDialect['prepare']>;
  private attempt!: (c: AcquireCommand) => AcquireResult;
  private releaseNow!: (c: ReleaseCommand) => ReleaseResult;
  private enqueueNow!: (c: EnqueueCommand) => Row | undefined;

  constructor(
    readonly dataSource: DataSource,
    private readonly tableName: string,
  ) {}

  async init(): Promise<boolean> {
    const file = String((this.dataSource.options as { database?: string }).database ?? '');
    const shared = (this.dataSource.driver as unknown as { databaseConnection: Database })
      .databaseConnection;
    if (file === '' || file === ':memory:' || file.startsWith('file::memory:')) {
      this.db = shared;
    } else {
      const BetterSqlite3 = shared.constructor as DatabaseConstructor;
      this.db = new BetterSqlite3(file, { timeout: 0 });
      this.ownConnection = true;
      this.shared = shared;
      await this.retryBusy(() => this.db.pragma('journal_mode = WAL'));
    }
    return this.tableExists(this.tableName.split('.').pop()!);
  }

  async schemaVersion(current: number): Promise<number> {
    const waiters = waiterTableName(this.tableName.split('.').pop()!);
    if (!this.tableExists(waiters)) return 1;
    const row = this.db
      .prepare(`SELECT queued_at FROM "${waiters}" WHERE token = ?`)
      .get(SCHEMA_ROW.token);
    let version = current;
    if (row !== undefined) version = Number(row.queued_at);
    else {
      const r = SCHEMA_ROW;
      await this.retryBusy(() =>
        this.db
          .prepare(
            `INSERT OR IGNORE INTO "${waiters}" (token, lock_id, holder, ttl_ms, owner, queued_at, expires_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)`,
          )
          .run(r.token, r.lockId, r.holder, r.ttlMs, r.owner, current, r.expiresAt),
      );
    }
    if (version === current) this.prepareAll();
    return version;
  }

  /** Prepares every statement (the tables have the current schema). */
  private prepareAll(): void {
    this.sql = this.prepare();
    const tx = this.db.transaction((c: AcquireCommand) => this.attemptInTransaction(c));
    this.attempt = (c) => tx.immediate(c);
    const release = this.db.transaction((c: ReleaseCommand) => this.releaseInTransaction(c));
    this.releaseNow = (c) => release.immediate(c);
    const enqueue = this.db.transaction((c: EnqueueCommand) => {
      this.sql.clearDead.run(c.key);
      return this.sql.enqueue.get(
        c.token,
        c.key,
        c.holder,
        c.ttlMs,
        c.maxHoldMs,
        c.owner,
        c.doorbell,
        c.key,
        c.placeTtlMs,
      );
    });
    this.enqueueNow = (c) => enqueue.immediate(c);
  }

  private tableExists(table: string): boolean {
    return (
      this.db
        .prepare(`SELECT 1 AS found FROM sqlite_master WHERE type = 'table' AND name = ?`)
        .get(table) !== undefined
    );
  }

  async acquire(command: AcquireCommand): Promise<AcquireResult> {
    if (command.place !== null) {
      // A waiter: waiting for another writer here costs nothing.
      return this.retryBusy(() => this.attempt(command));
    }
    try {
      // Mostly the lock is free: one statement (atomic on its own) grants it, as the
      // takeover would. Otherwise the transaction takes an expired lease over, creates
      // the row, or finds who holds it.
      const row = this.sql.takeFree.get(
        ...grantValues(command),
        command.key,
        ...takeValues(command),
      );
      return row === undefined ? this.attempt(command) : granted(row);
    } catch (error) {
      if (!isBusy(error)) throw error;
      // This process's own transaction on TypeORM's connection may hold the write lock:
      // then no attempt can ever get in. Say so instead of waiting for the timeout.
      if (this.shared?.inTransaction) return this.retryBusy(() => this.attempt(command), 1_000);
      // Another process holds SQLite's write lock: this attempt simply did not get in.
      return { acquired: false, expiresAtUs: null, nowUs: null };
    }
  }

  private attemptInTransaction(c: AcquireCommand): AcquireResult {
    const row =
      this.sql.takeOver.get(
        c.holdLimitMessage,
        c.leaseExpiredMessage,
        ...grantValues(c),
        c.key,
        ...takeValues(c),
      ) ??
      this.sql.insert.get(
        c.key,
        c.name,
        c.token,
        c.holder,
        c.ttlMs,
        c.maxHoldMs,
        c.ttlMs,
        c.maxHoldMs,
        c.oncePerMs,
        c.oncePerMs,
      );
    if (row !== undefined) {
      if (c.place !== null) this.sql.leaveLine.run(c.token);
      return granted(row);
    }
    const current = this.sql.peek.get(c.key);
    if (current === undefined) return { acquired: false, expiresAtUs: null, nowUs: null };
    // When it could be free: the lease end, the end of a minimum hold, or (kept for a
    // place ahead, or a period that ran already) unknown.
    const nowUs = Number(current.now);
    const holdUntil = current.hold_until === null ? null : Number(current.hold_until);
    const expiresAtUs =
      current.held === 1
        ? Number(current.expires_at)
        : holdUntil !== null && holdUntil > nowUs
          ? holdUntil
          : null;
    return { acquired: false, expiresAtUs, nowUs };
  }

  createDoorbell(): Doorbell {
    return new SocketDoorbell();
  }

  async extend(key: string, token: string, ttlMs: number, revive = false): Promise<number | null> {
    const statement = revive ? this.sql.revive : this.sql.extend;
    const row = await this.retryBusy(() => statement.get(ttlMs, ttlMs, key, token));
    return row === undefined ? null : Number(row.expires_at);
  }

  async release(command: ReleaseCommand): Promise<ReleaseResult> {
    try {
      // At once first: waiting for another writer is the exception.
      return this.releaseNow(command);
    } catch (error) {
      if (!isBusy(error)) throw error;
      return this.retryBusy(() => this.releaseNow(command));
    }
  }

  /** TypeORM's connection, which runs transactional sections (the module's own one in memory). */
  private get typeormConnection(): Database {
    return this.shared ?? this.db;
  }

  /** The statements, prepared on TypeORM's connection (for transactional sections). */
  private sharedSql: ReturnType<SqliteDialect['prepare']> | undefined;

  async beginWithin(_runner: QueryRunner): Promise<void> {
    // The write lock at once (one writer at a time), before the section reads: a deferred
    // transaction that read first could not write after another connection committed.
    const connection = this.typeormConnection;
    const claim = connection.prepare(`UPDATE ${this.quoted} SET fence = fence WHERE 0`);
    await this.retryBusy(() => claim.run());
  }

  async releaseWithin(
    _runner: QueryRunner,
    command: ReleaseCommand,
  ): Promise<{ result: ReleaseResult; afterCommit?: () => void }> {
    // On TypeORM's connection, inside the section's transaction (which holds the write
    // lock since `beginWithin`): the module's own connection could not write now.
    const connection = this.typeormConnection;
    const sql = connection === this.db ? this.sql : (this.sharedSql ??= this.prepare(connection));
    return { result: this.releaseInTransaction(command, sql) };
  }

  /** The release and the hand-off to the first live place of the line, in one transaction. */
  private releaseInTransaction(c: ReleaseCommand, sql = this.sql): ReleaseResult {
    const lock = sql.peekToken.get(c.minHoldMs, c.minHoldMs, c.minHoldMs, c.key);
    if (lock?.token !== c.token) return { released: false, handedTo: null };
    const keep = c.outcome === 'pass' ? 1 : 0;
    // A minimum hold keeps the lock taken: nobody is handed it before then.
    const holdUntil = lock.hold_until ?? null;
    const next = holdUntil === null ? sql.firstPlace.get(c.key) : undefined;
    if (next === undefined) {
      sql.free.run(keep, c.outcome, keep, c.error, holdUntil, c.key);
      const result: ReleaseResult = { released: true, handedTo: null };
      if (holdUntil !== null) result.holdUntilUs = Number(holdUntil);
      return result;
    }
    sql.handOver.run(
      keep,
      c.outcome,
      keep,
      c.error,
      next.token,
      next.holder,
      next.ttl_ms,
      c.handoffLeaseMs,
      next.max_hold_ms,
      next.ttl_ms,
      next.max_hold_ms,
      c.key,
    );
    sql.leaveLine.run(next.token);
    const doorbell = next.doorbell as string | null;
    return {
      released: true,
      handedTo: String(next.owner),
      ring: doorbell === null ? undefined : { token: String(next.token), doorbell },
    };
  }

  async enqueue(command: EnqueueCommand): Promise<Place> {
    const row = await this.retryBusy(() => this.enqueueNow(command));
    return { token: command.token, queuedAtUs: Number(row!.queued_at) };
  }

  async leaveLine(token: string): Promise<boolean> {
    const { changes } = await this.retryBusy(() => this.sql.leaveLine.run(token));
    return changes === 1;
  }

  async renewPlaces(
    owner: string,
    placeTtlMs: number,
    doorbell: string | null,
    expected: number,
  ): Promise<string[] | number> {
    const rows = await this.retryBusy(() => this.sql.renewPlaces.all(placeTtlMs, doorbell, owner));
    return rows.length < expected ? rows.map((row) => String(row.token)) : rows.length;
  }

  async readLocks(keys: readonly string[]): Promise<Map<string, StoredLock>> {
    const rows = await this.retryBusy(() =>
      this.db
        .prepare(
          `SELECT id, ${COLUMNS}, ${NOW} AS now FROM ${this.quoted} WHERE id IN (${keys.map(() => '?').join(', ')})`,
        )
        .all(...keys),
    );
    return new Map(rows.map((row) => [String(row.id), toStoredLock(row)]));
  }

  async forceRelease(key: string, error: string, fence?: number): Promise<boolean> {
    const { changes } = await this.retryBusy(() =>
      this.sql.forceRelease.run(error, key, fence ?? null, fence ?? null),
    );
    return changes === 1;
  }

  async inspect(key: string): Promise<StoredLock | null> {
    const row = await this.retryBusy(() => this.sql.inspect.get(key));
    return row === undefined ? null : toStoredLock(row);
  }

  async list(): Promise<StoredLock[]> {
    const rows = await this.retryBusy(() => this.sql.list.all());
    return rows.map(toStoredLock);
  }

  async purge(olderThanMs: number): Promise<number> {
    const { changes } = await this.retryBusy(() => this.sql.purge.run({ ms: olderThanMs }));
    await this.retryBusy(() => this.sql.purgePlaces.run());
    return changes;
  }

  async probe(): Promise<boolean> {
    const table = this.tableName.split('.').pop()!;
    const found = this.db
      .prepare(
        `SELECT count(*) AS found FROM sqlite_master WHERE type = 'table' AND name IN (?, ?)`,
      )
      .get(table, waiterTableName(table));
    return Number(found?.found) === 2;
  }

  private get quoted(): string {
    return `"${this.tableName.split('.').pop()}"`;
  }

  async close(): Promise<void> {
    if (this.ownConnection && this.db.open) this.db.close();
  }

  /**
   * Runs a statement again while another process holds the write lock, without blocking
   * the event loop. Still busy after `forMs` while TypeORM's connection in this process has
   * a transaction open: that transaction is what holds the lock (a self-deadlock).
   */
  private async retryBusy<T>(run: () => T, forMs = BUSY_RETRY_MS): Promise<T> {
    const deadline = performance.now() + forMs;
    for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
      try {
        return run();
      } catch (error) {
        if (!isBusy(error)) throw error;
        if (performance.now() > deadline) {
          if (this.shared?.inTransaction) {
            throw new RLockConfigurationError(MESSAGES.sqliteSelfDeadlock, { cause: error });
          }
          throw error;
        }
        await new Promise((resolve) => setTimeout(resolve, delay * (0.5 + Math.random() / 2)));
      }
    }
  }

  private prepare(db: Database = this.db) {
    const t = this.quoted;
    const w = `"${waiterTableName(this.tableName.split('.').pop()!)}"`;
    const prepare = (sql: string) => db.prepare(sql);
    // Granting statements return GRANTED_COLUMNS as arrays: an object row costs
    // better-sqlite3 a name lookup per column (about a microsecond per row).
    const granting = (sql: string) => prepare(`${sql} RETURNING ${GRANTED_COLUMNS}`).raw(true);
    // No live place ahead of the caller (parameters: the key, then `ahead(place)`).
    const inLine = `NOT EXISTS (SELECT 1 FROM ${w} AS q WHERE q.lock_id = ? AND q.expires_at > ${NOW}
      AND (q.queued_at < ? OR (q.queued_at = ? AND q.token < ?)))`;
    const outcome = `last_outcome = CASE WHEN ? THEN last_outcome ELSE ? END,
      last_error = CASE WHEN ? THEN last_error ELSE ? END`;
    // Integer division (better-sqlite3 binds numbers as REAL).
    const tick = `(${NOW} / CAST(? * 1000 AS INTEGER)) * CAST(? * 1000 AS INTEGER)`;
    // A grant (parameters: `grantValues`): the lease capped by the hold limit, the period.
    const grant = `token = ?, holder = ?, fence = fence + 1, acquired_at = ${NOW},
      expires_at = ${NOW} + MIN(?, COALESCE(?, ?)) * 1000, hold_limit = ${NOW} + ? * 1000,
      hold_until = NULL, last_tick_at = COALESCE(${tick}, last_tick_at)`;
    // May be taken (parameters: `takeValues`): no minimum hold left, the period not run yet,
    // no live place ahead.
    const mayTake = `(hold_until IS NULL OR hold_until <= ${NOW})
      AND (? IS NULL OR last_tick_at IS NULL OR last_tick_at < ${tick}) AND ${inLine}`;
    const overran = `(hold_limit IS NOT NULL AND expires_at >= hold_limit)`;
    return {
      peek: prepare(
        `SELECT token IS NOT NULL AND expires_at > ${NOW} AS held, expires_at, hold_until, ${NOW} AS now
         FROM ${t} WHERE id = ?`,
      ),
      // The holder, and the end of its minimum hold if one is left (parameters: the
      // minimum hold, three times; the key).
      peekToken: prepare(
        `SELECT token, CASE WHEN ? IS NOT NULL AND acquired_at + ? * 1000 > ${NOW}
           THEN acquired_at + ? * 1000 END AS hold_until
         FROM ${t} WHERE id = ?`,
      ),
      takeFree: granting(`UPDATE ${t} SET ${grant} WHERE id = ? AND token IS NULL AND ${mayTake}`),
      takeOver: granting(
        `UPDATE ${t} SET
           last_outcome = CASE WHEN token IS NULL THEN last_outcome
             WHEN ${overran} THEN 'overran' ELSE 'expired' END,
           last_error = CASE WHEN token IS NULL THEN last_error
             WHEN ${overran} THEN json_object(
               'type', 'HoldLimitExceededError', 'name', 'HoldLimitExceededError', 'code', 'RLOCK_HOLD_LIMIT', 'message', ?,
               'fields', json_object('holder', holder, 'fence', fence, 'limitAt', hold_limit / 1000))
             ELSE json_object(
               'type', 'LeaseExpiredError', 'name', 'LeaseExpiredError', 'code', 'RLOCK_LEASE_EXPIRED', 'message', ?,
               'fields', json_object('holder', holder, 'fence', fence, 'expiredAt', expires_at / 1000)) END,
           ${grant}
         WHERE id = ? AND (token IS NULL OR expires_at <= ${NOW}) AND ${mayTake}`,
      ),
      insert: granting(
        `INSERT INTO ${t} (id, name, token, holder, fence, acquired_at, expires_at, hold_limit, last_tick_at)
         VALUES (?, ?, ?, ?, ${NOW}, ${NOW}, ${NOW} + MIN(?, COALESCE(?, ?)) * 1000, ${NOW} + ? * 1000, ${tick})
         ON CONFLICT (id) DO NOTHING`,
      ),
      extend: prepare(
        `UPDATE ${t} SET expires_at = MIN(${NOW} + ? * 1000, COALESCE(hold_limit, ${NOW} + ? * 1000))
         WHERE id = ? AND token = ? AND expires_at > ${NOW} RETURNING expires_at`,
      ),
      revive: prepare(
        `UPDATE ${t} SET expires_at = MIN(${NOW} + ? * 1000, COALESCE(hold_limit, ${NOW} + ? * 1000))
         WHERE id = ? AND token = ? AND (hold_limit IS NULL OR hold_limit > ${NOW}) RETURNING expires_at`,
      ),
      firstPlace: prepare(
        `SELECT token, holder, ttl_ms, max_hold_ms, owner, doorbell FROM ${w}
         WHERE lock_id = ? AND expires_at > ${NOW}
         ORDER BY queued_at, token LIMIT 1`,
      ),
      free: prepare(
        `UPDATE ${t} SET ${outcome}, token = NULL, hold_until = ?, released_at = ${NOW} WHERE id = ?`,
      ),
      handOver: prepare(
        `UPDATE ${t} SET ${outcome}, token = ?, holder = ?, fence = fence + 1, acquired_at = ${NOW},
           expires_at = ${NOW} + MIN(?, ?, COALESCE(?, ?)) * 1000, hold_limit = ${NOW} + ? * 1000,
           hold_until = NULL, released_at = ${NOW}
         WHERE id = ?`,
      ),
      forceRelease: prepare(
        `UPDATE ${t} SET token = NULL, fence = fence + 1, last_outcome = 'force-released', last_error = ?, released_at = ${NOW}
         WHERE id = ? AND token IS NOT NULL AND (? IS NULL OR fence = ?)`,
      ),
      clearDead: prepare(`DELETE FROM ${w} WHERE lock_id = ? AND expires_at <= ${NOW}`),
      // One writer at a time: the line's order is strictly the order of arrival.
      enqueue: prepare(
        `INSERT INTO ${w} (token, lock_id, holder, ttl_ms, max_hold_ms, owner, doorbell, queued_at, expires_at)
         VALUES (?, ?, ?, ?, ?, ?, ?,
           MAX(${NOW}, COALESCE((SELECT MAX(queued_at) + 1 FROM ${w} WHERE lock_id = ?), 0)),
           ${NOW} + ? * 1000)
         RETURNING queued_at`,
      ),
      leaveLine: prepare(`DELETE FROM ${w} WHERE token = ?`),
      renewPlaces: prepare(
        `UPDATE ${w} SET expires_at = ${NOW} + ? * 1000, doorbell = ? WHERE owner = ? RETURNING token`,
      ),
      inspect: prepare(`SELECT ${COLUMNS}, ${NOW} AS now FROM ${t} WHERE id = ?`),
      list: prepare(`SELECT ${COLUMNS}, ${NOW} AS now FROM ${t} ORDER BY name`),
      // Released rows only: an expired holder's row keeps its outcome for the next holder.
      purge: prepare(
        `DELETE FROM ${t} WHERE token IS NULL AND COALESCE(released_at, acquired_at, 0) < ${NOW} - @ms * 1000
           AND NOT EXISTS (SELECT 1 FROM ${w} AS q WHERE q.lock_id = ${t}.id AND q.expires_at > ${NOW})`,
      ),
      purgePlaces: prepare(`DELETE FROM ${w} WHERE expires_at <= ${NOW}`),
    };
  }
}

/** What the granting statements return, in this order (see `granted`). */
const GRANTED_COLUMNS = 'fence, acquired_at, expires_at, last_outcome, last_error, hold_limit';

/** Parameters of a grant's assignments (`grant`). */
function grantValues(c: AcquireCommand): unknown[] {
  const { token, holder, ttlMs, maxHoldMs, oncePerMs } = c;
  return [token, holder, ttlMs, maxHoldMs, ttlMs, maxHoldMs, oncePerMs, oncePerMs];
}

/** Parameters of the grant condition (`mayTake`) after the key. */
function takeValues(c: AcquireCommand): unknown[] {
  return [c.oncePerMs, c.oncePerMs, c.oncePerMs, c.key, ...ahead(c.place)];
}

/** Parameters of the line condition: a place's (queued_at, token), or "any place" for a newcomer. */
function ahead(place: Place | null): unknown[] {
  return place === null
    ? [Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, '']
    : [place.queuedAtUs, place.queuedAtUs, place.token];
}

/** The answer to an attempt whose statement returned the granted row (GRANTED_COLUMNS). */
function granted(row: unknown[]): AcquireResult {
  return {
    acquired: true,
    fence: Number(row[0]),
    acquiredAtUs: Number(row[1]),
    expiresAtUs: Number(row[2]),
    lastOutcome: (row[3] as never) ?? null,
    lastError: (row[4] as string | null) ?? null,
    holdLimitUs: row[5] === null || row[5] === undefined ? null : Number(row[5]),
  };
}

function isBusy(error: unknown): boolean {
  const code = (error as { code?: string }).code;
  return code === 'SQLITE_BUSY' || code === 'SQLITE_BUSY_SNAPSHOT' || code === 'SQLITE_LOCKED';
}
