import type { DataSource, QueryRunner } from 'typeorm';
import { convertToMysqlCharset } from '../entities/mysql-charset';
import { waiterTableName } from '../entities/rlock-waiter.entity';
import { SCHEMA_ROW } from '../entities/schema-version';
import type { Doorbell } from '../waiting/doorbell.interface';
import { MysqlDoorbell, type MysqlDoorbellConnection } from '../waiting/mysql-doorbell';
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

type Row = Record<string, unknown>;
interface ResultHeader {
  affectedRows: number;
}
type Callback = (error: Error | null, result: unknown) => void;
/** What runs a statement: the pool or one connection. */
interface Queryable {
  query(sql: string, values: unknown[], callback: Callback): void;
}
interface MysqlConnection {
  query(sql: string, values: unknown[], callback: Callback): void;
  release(): void;
  destroy(): void;
}
interface MysqlPool {
  query(sql: string, values: unknown[], callback: Callback): void;
  getConnection(callback: (error: Error | null, connection: MysqlConnection) => void): void;
  /** mysql2: the options every connection of the pool is made with. */
  config?: { connectionConfig?: unknown };
}
interface MysqlDriver {
  pool?: MysqlPool;
  poolCluster?: { of(pattern: string): MysqlPool };
  /** The loaded driver module (mysql2). */
  mysql?: { Connection?: new (options: { config: unknown }) => MysqlDoorbellConnection };
  /** The data source's options. */
  options?: { synchronize?: boolean };
}

/** The database clock, in microseconds since the Unix epoch (UTC, whatever the session time zone). */
const NOW = `TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))`;
const COLUMNS =
  'name, token, fence, holder, acquired_at, expires_at, released_at, last_outcome, last_error, hold_until, hold_limit, last_tick_at';
/** A grant's lease end: its ttl, capped by its hold limit (parameters: ttl, maxHold, ttl). */
const GRANT_EXPIRES = `${NOW} + LEAST(?, COALESCE(?, ?)) * 1000`;
/** A grant's hold limit (parameter: maxHold; NULL without one). */
const GRANT_LIMIT = `${NOW} + ? * 1000`;
/** The start of the current period of `oncePer` (parameters: period, period; NULL without one). */
const TICK = `(${NOW} DIV (? * 1000)) * (? * 1000)`;
/** The holding being taken over reached its hold limit. */
const OVERRAN = `(hold_limit IS NOT NULL AND expires_at >= hold_limit)`;
/** What a takeover stores (parameters: the hold-limit message, the lease-expired message). */
const TAKEOVER_ERROR = `IF(${OVERRAN}, JSON_OBJECT(
    'type', 'HoldLimitExceededError', 'name', 'HoldLimitExceededError', 'code', 'RLOCK_HOLD_LIMIT', 'message', ?,
    'fields', JSON_OBJECT('holder', holder, 'fence', fence, 'limitAt', hold_limit DIV 1000)),
  JSON_OBJECT(
    'type', 'LeaseExpiredError', 'name', 'LeaseExpiredError', 'code', 'RLOCK_LEASE_EXPIRED', 'message', ?,
    'fields', JSON_OBJECT('holder', holder, 'fence', fence, 'expiredAt', expires_at DIV 1000)))`;
/**
 * Free to take: released or its lease ended, no minimum hold left, and (parameters: the
 * period, three times) no run of the current period of `oncePer` took it yet.
 */
const FREE = `((token IS NULL OR expires_at <= ${NOW}) AND (hold_until IS NULL OR hold_until <= ${NOW})
  AND (? IS NULL OR last_tick_at IS NULL OR last_tick_at < ${TICK}))`;
const ER_NO_SUCH_TABLE = 1146;
const ER_DUP_ENTRY = 1062;
/** `KILL QUERY` found no such connection (the waiter's doorbell reconnected meanwhile). */
const ER_NO_SUCH_THREAD = 1094;
/** Errors after which InnoDB or Galera rolled the statement back and it can simply run again. */
const RETRYABLE = new Set([1213 /* deadlock */, 1205 /* lock wait timeout */]);
const MAX_RETRIES = 5;
/** How long a ring (`KILL QUERY`) may keep its pooled connection before it is dropped. */
const RING_TIMEOUT_MS = 250;

/**
 * MySQL and MariaDB through `mysql2`, on the pool TypeORM already opened. On MariaDB
 * 10.5+ an attempt is one `INSERT … ON DUPLICATE KEY UPDATE … RETURNING` round trip;
 * on MySQL (no RETURNING) a conditional UPDATE followed by a read of the granted row.
 * A release is one transaction that hands the lock to the first live place of its line,
 * then rings that process's doorbell (see `MysqlDoorbell`).
 */
export class MysqlDialect implements LockDialect {
  readonly database = 'MySQL/MariaDB';
  private readonly table: string;
  private readonly waiters: string;
  private readonly pool: MysqlPool;
  private readonly driver: MysqlDriver;
  private returning = false;
  /** Put before `INSERT … RETURNING` (Galera: see init()). */
  private returningPrefix = '';
  /** A Galera cluster (see init()). */
  private galera = false;
  /** Renewals run on a connection of their own (see `useLeaseConnection`). */
  private leaseEnabled = false;
  private lease: Promise<Queryable> | undefined;
  private leaseClient: MysqlDoorbellConnection | undefined;

  /**
   * @param options.returning use MariaDB's `INSERT … RETURNING` (default: detected from
   *   the server version); `false` forces the MySQL statements, which MariaDB also runs.
   */
  constructor(
    readonly dataSource: DataSource,
    private readonly tableName: string,
    private readonly options: { returning?: boolean } = {},
  ) {
    const quote = (name: string) =>
      name
        .split('.')
        .map((part) => `\`${part}\``)
        .join('.');
    this.table = quote(tableName);
    this.waiters = quote(waiterTableName(tableName));
    this.driver = dataSource.driver as unknown as MysqlDriver;
    this.pool = this.driver.pool ?? this.driver.poolCluster!.of('MASTER');
  }

  async init(): Promise<boolean> {
    const [version] = await this.query<Row[]>('SELECT VERSION() AS version', []);
    const match = /^(\d+)\.(\d+)\.\d+-MariaDB/i.exec(String(version.version));
    this.returning =
      this.options.returning ??
      (match !== null &&
        (Number(match[1]) > 10 || (Number(match[1]) === 10 && Number(match[2]) >= 5)));
    const [wsrep] = await this.query<Row[]>(`SHOW VARIABLES LIKE 'wsrep_on'`, []);
    // Galera: a doorbell can only be rung from the same node; waiters poll instead.
    this.galera = wsrep !== undefined && wsrep.Value === 'ON';
    if (this.galera && this.returning) {
      // Galera re-runs an autocommit statement that lost a certification conflict
      // (wsrep_retry_autocommit); the rows RETURNING sent may then describe the rolled-back
      // run (measured: overlaps and unseen grants). Let the conflict surface as 1213 and
      // retry it here instead.
      this.returningPrefix = 'SET STATEMENT wsrep_retry_autocommit = 0 FOR ';
    }
    const exists = await this.probe();
    // Tables TypeORM synchronized have the server's default character set: utf8mb4 instead.
    if (exists && this.driver.options?.synchronize === true) {
      await convertToMysqlCharset((sql, values) => this.query(sql, values), this.tableName);
    }
    return exists;
  }

  createDoorbell(): Doorbell | undefined {
    const Connection = this.driver.mysql?.Connection;
    const config = this.pool.config?.connectionConfig;
    if (!Connection || !config || this.galera) return undefined;
    return new MysqlDoorbell(() => this.newConnection());
  }

  async schemaVersion(current: number): Promise<number> {
    let rows: Row[];
    try {
      rows = await this.query<Row[]>(`SELECT queued_at FROM ${this.waiters} WHERE token = ?`, [
        SCHEMA_ROW.token,
      ]);
    } catch (error) {
      if ((error as { errno?: number }).errno === ER_NO_SUCH_TABLE) return 1;
      throw error;
    }
    if (rows[0] !== undefined) return toNumber(rows[0].queued_at);
    const r = SCHEMA_ROW;
    await this.query(
      `INSERT IGNORE INTO ${this.waiters} (token, lock_id, holder, ttl_ms, owner, queued_at, expires_at)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
      [r.token, r.lockId, r.holder, r.ttlMs, r.owner, current, r.expiresAt],
    );
    return current;
  }

  async probe(): Promise<boolean> {
    try {
      await this.query(`SELECT 1 FROM ${this.table} WHERE 1 = 0`, []);
      return true;
    } catch (error) {
      if ((error as { errno?: number }).errno === ER_NO_SUCH_TABLE) return false;
      throw error;
    }
  }

  async acquire(command: AcquireCommand): Promise<AcquireResult> {
    const result = this.returning
      ? await this.upsertReturning(command)
      : await this.updateThenRead(command);
    if (result.acquired && command.place !== null) {
      await this.query('DELETE FROM ' + this.waiters + ' WHERE token = ?', [command.token]);
    }
    return result;
  }

  /** No live place ahead of the caller (parameters: `ahead(place)` and the lock's key). */
  private get free(): string {
    return `NOT EXISTS (SELECT 1 FROM ${this.waiters} AS q WHERE q.lock_id = ? AND q.expires_at > ${NOW}
      AND (q.queued_at < ? OR (q.queued_at = ? AND q.token < ?)))`;
  }

  /** MariaDB: one round trip that inserts, takes over or leaves the row, and returns it. */
  private async upsertReturning(c: AcquireCommand): Promise<AcquireResult> {
    // ON DUPLICATE KEY UPDATE assigns left to right: the outcome columns read the old
    // holder before `token` changes; the columns after `token` test whether it is ours.
    const [row] = await this.query<Row[]>(
      `${this.returningPrefix}INSERT INTO ${this.table}
         (id, name, token, holder, fence, acquired_at, expires_at, hold_limit, last_tick_at)
       VALUES (?, ?, ?, ?, ${NOW}, ${NOW}, ${GRANT_EXPIRES}, ${GRANT_LIMIT}, ${TICK})
       ON DUPLICATE KEY UPDATE
         last_outcome = IF(token IS NOT NULL AND expires_at <= ${NOW}, IF(${OVERRAN}, 'overran', 'expired'), last_outcome),
         last_error = IF(token IS NOT NULL AND expires_at <= ${NOW}, ${TAKEOVER_ERROR}, last_error),
         token = IF(@rlock_granted := (${FREE} AND ${this.free}), VALUES(token), token),
         fence = IF(@rlock_granted, fence + 1, fence),
         holder = IF(@rlock_granted, VALUES(holder), holder),
         acquired_at = IF(@rlock_granted, ${NOW}, acquired_at),
         expires_at = IF(@rlock_granted, VALUES(expires_at), expires_at),
         hold_limit = IF(@rlock_granted, VALUES(hold_limit), hold_limit),
         hold_until = IF(@rlock_granted, NULL, hold_until),
         last_tick_at = IF(@rlock_granted, COALESCE(VALUES(last_tick_at), last_tick_at), last_tick_at)
       RETURNING token, fence, acquired_at, expires_at, last_outcome, last_error, hold_limit, hold_until, ${NOW} AS now`,
      [
        c.key,
        c.name,
        c.token,
        c.holder,
        ...grantValues(c),
        c.holdLimitMessage,
        c.leaseExpiredMessage,
        ...freeValues(c),
        c.key,
        ...ahead(c.place),
      ],
    );
    if (row.token === c.token) return granted(row);
    return notGranted(row);
  }

  /** MySQL: a conditional UPDATE (or the first INSERT), then a read of the row it granted. */
  private async updateThenRead(c: AcquireCommand): Promise<AcquireResult> {
    const updated = await this.query<ResultHeader>(
      `UPDATE ${this.table} SET
         last_outcome = IF(token IS NOT NULL, IF(${OVERRAN}, 'overran', 'expired'), last_outcome),
         last_error = IF(token IS NOT NULL, ${TAKEOVER_ERROR}, last_error),
         token = ?, holder = ?, fence = fence + 1, acquired_at = ${NOW}, expires_at = ${GRANT_EXPIRES},
         hold_limit = ${GRANT_LIMIT}, hold_until = NULL,
         last_tick_at = COALESCE(${TICK}, last_tick_at)
       WHERE id = ? AND ${FREE} AND ${this.free}`,
      [
        c.holdLimitMessage,
        c.leaseExpiredMessage,
        c.token,
        c.holder,
        ...grantValues(c),
        c.key,
        ...freeValues(c),
        c.key,
        ...ahead(c.place),
      ],
    );
    if (updated.affectedRows === 0) {
      try {
        await this.query(
          `INSERT INTO ${this.table} (id, name, token, holder, fence, acquired_at, expires_at, hold_limit, last_tick_at)
           VALUES (?, ?, ?, ?, ${NOW}, ${NOW}, ${GRANT_EXPIRES}, ${GRANT_LIMIT}, ${TICK})`,
          [c.key, c.name, c.token, c.holder, ...grantValues(c)],
        );
      } catch (error) {
        if ((error as { errno?: number }).errno !== ER_DUP_ENTRY) throw error;
      }
    }
    const [row] = await this.query<Row[]>(
      `SELECT token, fence, acquired_at, expires_at, last_outcome, last_error, hold_limit, hold_until, ${NOW} AS now
       FROM ${this.table} WHERE id = ?`,
      [c.key],
    );
    if (row !== undefined && row.token === c.token) return granted(row);
    return row === undefined
      ? { acquired: false, expiresAtUs: null, nowUs: null }
      : notGranted(row);
  }

  async extend(key: string, token: string, ttlMs: number, revive = false): Promise<number | null> {
    const via = await this.leaseConnection().catch(() => this.pool);
    const result = await this.query<ResultHeader>(
      `UPDATE ${this.table} SET expires_at = LEAST(${NOW} + ? * 1000, COALESCE(hold_limit, ${NOW} + ? * 1000))
       WHERE id = ? AND token = ? AND ${revive ? `(hold_limit IS NULL OR hold_limit > ${NOW})` : `expires_at > ${NOW}`}`,
      [ttlMs, ttlMs, key, token],
      via,
    );
    if (result.affectedRows !== 1) return null;
    const [row] = await this.query<Row[]>(
      `SELECT expires_at FROM ${this.table} WHERE id = ? AND token = ?`,
      [key, token],
      via,
    );
    return row === undefined ? null : toNumber(row.expires_at);
  }

  useLeaseConnection(): void {
    this.leaseEnabled =
      this.driver.mysql?.Connection !== undefined &&
      this.pool.config?.connectionConfig !== undefined;
  }

  /** The connection renewals run on: the dialect's own when enabled (reconnected when lost), else the pool. */
  private leaseConnection(): Promise<Queryable> {
    if (!this.leaseEnabled) return Promise.resolve(this.pool);
    if (this.lease === undefined) {
      const connection = this.newConnection();
      const lost = () => {
        if (this.lease === opened) this.lease = undefined;
        connection.destroy();
      };
      connection.on('error', lost);
      connection.on('end', lost);
      // mysql2 connects on its own; the first statement tells whether it did.
      const opened = new Promise<Queryable>((resolve, reject) =>
        connection.query('SELECT 1', [], (error) => (error ? reject(error) : resolve(connection))),
      );
      opened.then(() => (this.leaseClient = connection), lost);
      this.lease = opened;
    }
    return this.lease;
  }

  /** A connection of the dialect's own, made with the pool's connection options. */
  private newConnection(): MysqlDoorbellConnection {
    const Connection = this.driver.mysql!.Connection!;
    const config = this.pool.config?.connectionConfig;
    // A copy of the pool's connection options, as the pool makes for each connection.
    const options = Object.create(
      Object.getPrototypeOf(config) as object,
      Object.getOwnPropertyDescriptors(config),
    ) as unknown;
    return new Connection({ config: options });
  }

  async release(command: ReleaseCommand): Promise<ReleaseResult> {
    const { key, token, outcome, error, minHoldMs } = command;
    const keep = outcome === 'pass';
    // Mostly nobody waits: one statement frees the lock. Otherwise (or when it is not this
    // token's any more, or a minimum hold may be left to report) the transaction below
    // finds out and hands the lock over.
    if (minHoldMs !== null)
      return this.transaction<ReleaseResult>((run) => this.releaseSteps(run, command));
    const freed = await this.query<ResultHeader>(
      `UPDATE ${this.table} SET ${keep ? '' : 'last_outcome = ?, last_error = ?, '}token = NULL,
         hold_until = NULL, released_at = ${NOW}
       WHERE id = ? AND token = ?
         AND NOT EXISTS (SELECT 1 FROM ${this.waiters} AS q WHERE q.lock_id = ? AND q.expires_at > ${NOW})`,
      [...(keep ? [] : [outcome, error]), key, token, key],
    );
    if (freed.affectedRows === 1) return { released: true, handedTo: null };
    return this.transaction<ReleaseResult>((run) => this.releaseSteps(run, command));
  }

  async releaseWithin(
    runner: QueryRunner,
    command: ReleaseCommand,
  ): Promise<{ result: ReleaseResult; afterCommit?: () => void }> {
    // The transaction's steps on its own connection; the ring (KILL QUERY) once committed,
    // on a pooled connection of its own.
    const connection = (runner as unknown as { databaseConnection: Queryable }).databaseConnection;
    const { result, after } = await this.releaseSteps(
      // No retry here: a deadlock rolled the caller's whole transaction back.
      <R>(sql: string, values: unknown[]) =>
        new Promise<R>((resolve, reject) =>
          connection.query(sql, values, (error, result) =>
            error ? reject(error) : resolve(result as R),
          ),
        ),
      command,
    );
    if (!after) return { result };
    const afterCommit = () =>
      this.pool.getConnection((error, pooled) => {
        if (!error) this.afterCommit(pooled, after);
      });
    return { result, afterCommit };
  }

  /** The release and hand-off, inside a transaction (`run`: a statement of it). */
  private async releaseSteps(
    run: <R>(sql: string, values: unknown[]) => Promise<R>,
    command: ReleaseCommand,
  ): Promise<{ result: ReleaseResult; after?: () => Promise<unknown> }> {
    const { key, token, outcome, error, handoffLeaseMs, minHoldMs } = command;
    const keep = outcome === 'pass';
    const [lock] = await run<Row[]>(
      `SELECT token, IF(? IS NOT NULL AND acquired_at + ? * 1000 > ${NOW}, acquired_at + ? * 1000, NULL) AS hold_until
         FROM ${this.table} WHERE id = ? FOR UPDATE`,
      [minHoldMs, minHoldMs, minHoldMs, key],
    );
    if (lock?.token !== token) return { result: { released: false, handedTo: null } };
    const holdUntil = toNullableNumber(lock.hold_until);
    // A minimum hold keeps the lock taken: nobody is handed it before then.
    const [next] =
      holdUntil !== null
        ? []
        : await run<Row[]>(
            `SELECT token, holder, ttl_ms, max_hold_ms, owner, doorbell,
                 CONCAT(@@hostname, ':', @@port, ':') AS here
               FROM ${this.waiters} WHERE lock_id = ? AND expires_at > ${NOW}
               ORDER BY queued_at, token LIMIT 1 FOR UPDATE`,
            [key],
          );
    // The outcome columns first: MySQL assigns left to right.
    const outcomeColumns = keep ? '' : 'last_outcome = ?, last_error = ?, ';
    const outcomeValues = keep ? [] : [outcome, error];
    if (next === undefined) {
      await run(
        `UPDATE ${this.table} SET ${outcomeColumns}token = NULL, hold_until = ?, released_at = ${NOW}
           WHERE id = ?`,
        [...outcomeValues, holdUntil, key],
      );
      const result: ReleaseResult = { released: true, handedTo: null };
      if (holdUntil !== null) result.holdUntilUs = holdUntil;
      return { result };
    }
    const ttl = toNumber(next.ttl_ms);
    const maxHold = toNullableNumber(next.max_hold_ms);
    await run(
      `UPDATE ${this.table} SET ${outcomeColumns}token = ?, holder = ?, fence = fence + 1,
           acquired_at = ${NOW}, expires_at = ${NOW} + ? * 1000, hold_limit = ${NOW} + ? * 1000,
           hold_until = NULL, released_at = ${NOW}
         WHERE id = ?`,
      [
        ...outcomeValues,
        next.token,
        next.holder,
        Math.min(ttl, handoffLeaseMs, maxHold ?? ttl),
        maxHold,
        key,
      ],
    );
    await run(`DELETE FROM ${this.waiters} WHERE token = ?`, [next.token]);
    // Rung after the commit, on the same server only (connection ids are per server).
    const doorbell = (next.doorbell as string | null) ?? '';
    const here = String(next.here);
    const id = doorbell.startsWith(here) ? doorbell.slice(here.length) : '';
    return {
      result: { released: true, handedTo: String(next.owner) },
      after: /^\d+$/.test(id)
        ? () =>
            run(`KILL QUERY ${id}`, []).catch((killError: unknown) => {
              if ((killError as { errno?: number }).errno !== ER_NO_SUCH_THREAD) throw killError;
            })
        : undefined,
    };
  }

  async forceRelease(key: string, error: string, fence?: number): Promise<boolean> {
    const result = await this.query<ResultHeader>(
      `UPDATE ${this.table} SET token = NULL, fence = fence + 1, last_outcome = 'force-released', last_error = ?, released_at = ${NOW}
       WHERE id = ? AND token IS NOT NULL AND (? IS NULL OR fence = ?)`,
      [error, key, fence ?? null, fence ?? null],
    );
    return result.affectedRows === 1;
  }

  async inspect(key: string): Promise<StoredLock | null> {
    const [row] = await this.query<Row[]>(
      `SELECT ${COLUMNS}, ${NOW} AS now FROM ${this.table} WHERE id = ?`,
      [key],
    );
    return row === undefined ? null : toStoredLock(row);
  }

  async list(): Promise<StoredLock[]> {
    const rows = await this.query<Row[]>(
      `SELECT ${COLUMNS}, ${NOW} AS now FROM ${this.table} ORDER BY name`,
      [],
    );
    return rows.map(toStoredLock);
  }

  async purge(olderThanMs: number): Promise<number> {
    await this.query(`DELETE FROM ${this.waiters} WHERE expires_at <= ${NOW}`, []);
    // Released rows only: an expired holder's row keeps its outcome for the next holder.
    const result = await this.query<ResultHeader>(
      `DELETE FROM ${this.table} WHERE token IS NULL AND COALESCE(released_at, acquired_at, 0) < ${NOW} - ? * 1000
         AND NOT EXISTS (SELECT 1 FROM ${this.waiters} AS q WHERE q.lock_id = ${this.table}.id AND q.expires_at > ${NOW})`,
      [olderThanMs],
    );
    return result.affectedRows;
  }

  async enqueue(command: EnqueueCommand): Promise<Place> {
    const { key, token, holder, ttlMs, owner, doorbell, placeTtlMs, maxHoldMs } = command;
    // The line's dead places are cleared on the way. The place's time is read first: once
    // inserted, a release may hand it the lock and delete it at any moment.
    const [clock] = await this.query<Row[]>(`SELECT ${NOW} AS now`, []);
    const queuedAtUs = toNumber(clock.now);
    await this.query(`DELETE FROM ${this.waiters} WHERE lock_id = ? AND expires_at <= ?`, [
      key,
      queuedAtUs,
    ]);
    await this.query(
      `INSERT INTO ${this.waiters}
         (token, lock_id, holder, ttl_ms, max_hold_ms, owner, doorbell, queued_at, expires_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ? + ? * 1000)`,
      [token, key, holder, ttlMs, maxHoldMs, owner, doorbell, queuedAtUs, queuedAtUs, placeTtlMs],
    );
    return { token, queuedAtUs };
  }

  async leaveLine(token: string): Promise<boolean> {
    const result = await this.query<ResultHeader>(`DELETE FROM ${this.waiters} WHERE token = ?`, [
      token,
    ]);
    return result.affectedRows === 1;
  }

  async renewPlaces(
    owner: string,
    placeTtlMs: number,
    doorbell: string | null,
    expected: number,
  ): Promise<string[] | number> {
    const result = await this.query<ResultHeader>(
      `UPDATE ${this.waiters} SET expires_at = ${NOW} + ? * 1000, doorbell = ? WHERE owner = ?`,
      [placeTtlMs, doorbell, owner],
    );
    if (result.affectedRows >= expected) return result.affectedRows;
    const rows = await this.query<Row[]>(`SELECT token FROM ${this.waiters} WHERE owner = ?`, [
      owner,
    ]);
    return rows.map((row) => String(row.token));
  }

  async readLocks(keys: readonly string[]): Promise<Map<string, StoredLock>> {
    const rows = await this.query<Row[]>(
      `SELECT id, ${COLUMNS}, ${NOW} AS now FROM ${this.table} WHERE id IN (?)`,
      [keys],
    );
    return new Map(rows.map((row) => [String(row.id), toStoredLock(row)]));
  }

  async close(): Promise<void> {
    // The pool belongs to TypeORM, which closes it; the lease connection is ours.
    this.leaseEnabled = false;
    this.lease = undefined;
    this.leaseClient?.destroy();
    this.leaseClient = undefined;
  }

  /** Runs one autocommit statement, again after a deadlock or lock-wait rollback. */
  private async query<T>(sql: string, values: unknown[], via: Queryable = this.pool): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await new Promise<T>((resolve, reject) =>
          via.query(sql, values, (error, result) => (error ? reject(error) : resolve(result as T))),
        );
      } catch (error) {
        if (attempt >= MAX_RETRIES || !RETRYABLE.has((error as { errno?: number }).errno ?? 0)) {
          throw error;
        }
      }
    }
  }

  /**
   * Runs the step after a commit (the ring) on the same connection without making the
   * caller wait: `KILL QUERY` sometimes takes seconds on MariaDB (seen: 2–12 s when it
   * meets the doorbell between two sleeps). Past RING_TIMEOUT_MS the connection is dropped
   * rather than given back busy; the waiter then finds its grant by its renewal's read.
   */
  private afterCommit(connection: MysqlConnection, after: () => Promise<unknown>): void {
    let done = false;
    const finish = (healthy: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (healthy) connection.release();
      else connection.destroy();
    };
    const timer = setTimeout(() => finish(false), RING_TIMEOUT_MS);
    timer.unref();
    after().then(
      () => finish(true),
      () => finish(false),
    );
  }

  /**
   * Runs `work` in a transaction on one pooled connection (again after a deadlock), then
   * its `after` step on the same connection once committed (see `afterCommit`).
   */
  private async transaction<T>(
    work: (
      run: <R>(sql: string, values: unknown[]) => Promise<R>,
    ) => Promise<{ result: T; after?: () => Promise<unknown> }>,
  ): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const connection = await new Promise<MysqlConnection>((resolve, reject) =>
        this.pool.getConnection((error, conn) => (error ? reject(error) : resolve(conn))),
      );
      const run = <R>(sql: string, values: unknown[]) =>
        new Promise<R>((resolve, reject) =>
          connection.query(sql, values, (error, result) =>
            error ? reject(error) : resolve(result as R),
          ),
        );
      try {
        await run('START TRANSACTION', []);
        const { result, after } = await work(run);
        await run('COMMIT', []);
        if (after) this.afterCommit(connection, after);
        else connection.release();
        return result;
      } catch (error) {
        // A connection in an unknown state is not given back to the pool.
        connection.destroy();
        if (attempt >= MAX_RETRIES || !RETRYABLE.has((error as { errno?: number }).errno ?? 0)) {
          throw error;
        }
      }
    }
  }
}

/** Parameters of GRANT_EXPIRES, GRANT_LIMIT and TICK. */
function grantValues(c: AcquireCommand): unknown[] {
  return [c.ttlMs, c.maxHoldMs, c.ttlMs, c.maxHoldMs, c.oncePerMs, c.oncePerMs];
}

/** Parameters of FREE. */
function freeValues(c: AcquireCommand): unknown[] {
  return [c.oncePerMs, c.oncePerMs, c.oncePerMs];
}

/** Parameters of the line condition: a place's (queued_at, token), or "any place" for a newcomer. */
function ahead(place: Place | null): unknown[] {
  return place === null
    ? [Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, '']
    : [place.queuedAtUs, place.queuedAtUs, place.token];
}

/** Not granted: held (until its lease end), or free but kept for the first process in line. */
function notGranted(row: Row): AcquireResult {
  const held = row.token !== null && row.token !== undefined;
  const now = toNumber(row.now);
  const holdUntil = toNullableNumber(row.hold_until);
  return {
    acquired: false,
    // When it could be free: the lease end, or the end of a minimum hold.
    expiresAtUs: held
      ? toNumber(row.expires_at)
      : holdUntil !== null && holdUntil > now
        ? holdUntil
        : null,
    nowUs: now,
  };
}

function granted(row: Row): AcquireResult {
  return {
    acquired: true,
    fence: toNumber(row.fence),
    acquiredAtUs: toNumber(row.acquired_at),
    expiresAtUs: toNumber(row.expires_at),
    lastOutcome: (row.last_outcome as never) ?? null,
    lastError: (row.last_error as string | null) ?? null,
    holdLimitUs: toNullableNumber(row.hold_limit),
    // The lease may be a hand-off's, shorter than the ttl (a place's attempt that found the
    // lock already handed to it): the holder's deadline is counted from the database's clock.
    nowUs: toNumber(row.now),
  };
}
