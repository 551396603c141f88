import { createHash } from 'node:crypto';
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
import {
  mysqlQueueSession,
  queueLockName,
  type MysqlQueueConnection,
  type MysqlQueueSession,
} from './mysql-wait-queue';
import { HANDOFF_RESERVE_MS, WaitQueue } from './wait-queue';

type Row = Record<string, unknown>;
interface ResultHeader {
  affectedRows: number;
}
interface MysqlPool {
  query(
    sql: string,
    values: unknown[],
    callback: (error: Error | null, result: unknown) => void,
  ): void;
  /** mysql2: the options every connection of the pool is made with. */
  config?: { connectionConfig?: unknown };
}
interface MysqlDriver {
  pool?: MysqlPool;
  poolCluster?: { of(pattern: string): MysqlPool };
  /** The loaded driver module (mysql2). */
  mysql?: { Connection?: new (options: { config: unknown }) => MysqlQueueConnection };
}

/** The database clock, in microseconds since the Unix epoch (UTC, whatever the session time zone). */
const NOW = `TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))`;
const COLUMNS =
  'name, token, fence, holder, acquired_at, expires_at, released_at, last_outcome, last_error';
/**
 * A free lock released less than `HANDOFF_RESERVE_MS` ago while another process is first in
 * line (holds the line's `GET_LOCK`) is kept for that process; parameters: may this
 * process take it anyway (1: it is first in line, or there is no line), the reserve in ms,
 * the line's `GET_LOCK` name. Unknown (NULL) never reserves.
 */
const RESERVED = `(token IS NULL AND ? = 0 AND released_at > ${NOW} - ? * 1000 AND COALESCE(IS_FREE_LOCK(?), 1) = 0)`;
const ER_NO_SUCH_TABLE = 1146;
const ER_DUP_ENTRY = 1062;
/** Errors after which InnoDB or Galera rolled the statement back and it can simply run again. */
const RETRYABLE = new Set([1213 /* deadlock */, 1205 /* lock wait timeout */]);
const MAX_RETRIES = 5;

/**
 * MySQL and MariaDB through `mysql2`, on the pool TypeORM already opened. On MariaDB
 * 10.5+ an attempt is one `INSERT … ON DUPLICATE KEY UPDATE … RETURNING` round trip;
 * on MySQL (no RETURNING) a conditional UPDATE followed by a read of the granted row.
 * Waiting processes line up on `GET_LOCK` (see `WaitQueue`): a release calls the next
 * process in line; only the first in line polls, and only while the holder is not in line.
 */
export class MysqlDialect implements LockDialect {
  readonly database = 'MySQL/MariaDB';
  private readonly table: string;
  private readonly pool: MysqlPool;
  private returning = false;
  /** Put before `INSERT … RETURNING` (Galera: see init()). */
  private returningPrefix = '';
  private waitQueue: WaitQueue<MysqlQueueSession> | undefined;
  /** Keeps this lock table's `GET_LOCK` names apart from others on the server. */
  private namespace = '';
  private released: ((key: string) => void) | undefined;

  /**
   * @param options.returning use MariaDB's `INSERT … RETURNING` (default: detected from
   *   the server version); `false` forces the MySQL statements, which MariaDB also runs.
   */
  constructor(
    dataSource: DataSource,
    tableName: string,
    private readonly options: { returning?: boolean } = {},
  ) {
    this.table = tableName
      .split('.')
      .map((part) => `\`${part}\``)
      .join('.');
    const driver = dataSource.driver as unknown as MysqlDriver;
    this.pool = driver.pool ?? driver.poolCluster!.of('MASTER');
    const Connection = driver.mysql?.Connection;
    const config = this.pool.config?.connectionConfig;
    if (Connection && config) {
      const database = (dataSource.options as { database?: string }).database ?? '';
      const namespace = createHash('sha256')
        .update(`${database}.${tableName}`)
        .digest('hex')
        .slice(0, 12);
      this.namespace = namespace;
      this.waitQueue = new WaitQueue<MysqlQueueSession>(
        (onFailure) => {
          // A copy of the pool's connection options, as the pool makes for each connection.
          const options = Object.create(
            Object.getPrototypeOf(config) as object,
            Object.getOwnPropertyDescriptors(config),
          ) as unknown;
          const session = mysqlQueueSession(new Connection({ config: options }), namespace, () =>
            onFailure(session),
          );
          return session;
        },
        (key) => this.released?.(key),
      );
    }
  }

  async init(): Promise<boolean> {
    const [version] = await this.query<Row[]>('SELECT VERSION() AS version', []);
    const match = /^(\d+)\.(\d+)\.\d+-MariaDB/i.exec(String(version.version));
    this.returning =
      this.options.returning ??
      (match !== null &&
        (Number(match[1]) > 10 || (Number(match[1]) === 10 && Number(match[2]) >= 5)));
    const [wsrep] = await this.query<Row[]>(`SHOW VARIABLES LIKE 'wsrep_on'`, []);
    if (wsrep !== undefined && wsrep.Value === 'ON') {
      // Galera re-runs an autocommit statement that lost a certification conflict
      // (wsrep_retry_autocommit); the rows RETURNING sent may then describe the rolled-back
      // run (measured: overlaps and unseen grants). Let the conflict surface as 1213 and
      // retry it here instead.
      if (this.returning) this.returningPrefix = 'SET STATEMENT wsrep_retry_autocommit = 0 FOR ';
      // GET_LOCK is not replicated (each node would keep its own line): waiters poll.
      this.waitQueue?.close();
      this.waitQueue = undefined;
    }
    return this.probe();
  }

  /** Parameters of `RESERVED`: whether this process may take a just-released lock now. */
  private reserve(key: string): unknown[] {
    const mayTake = this.waitQueue === undefined || this.waitQueue.placeOf(key) === 'first';
    return [mayTake ? 1 : 0, HANDOFF_RESERVE_MS, queueLockName(this.namespace, key)];
  }

  onRelease(listener: (key: string) => void): void {
    this.released = listener;
  }

  queue(key: string): WakeUp {
    // Behind another process in line: called when its turn comes. First in line (or not
    // in line at all): the holder's release rings nothing here, so it polls.
    return this.waitQueue?.enter(key) && this.waitQueue.placeOf(key) === 'queued'
      ? 'woken'
      : 'polls';
  }

  dequeue(key: string): void {
    this.waitQueue?.leave(key);
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
    // First in line, called by a release that may still be committing: a plain read
    // would see the lock still held; the write below waits for that commit instead.
    if (command.readFirst && this.waitQueue?.placeOf(command.key) !== 'first') {
      const [row] = await this.query<Row[]>(
        `SELECT token IS NOT NULL AND expires_at > ${NOW} AS held, expires_at, ${NOW} AS now FROM ${this.table} WHERE id = ?`,
        [command.key],
      );
      if (row !== undefined && toNumber(row.held) === 1) {
        return { acquired: false, expiresAtUs: toNumber(row.expires_at), nowUs: toNumber(row.now) };
      }
    }
    return this.returning ? this.upsertReturning(command) : this.updateThenRead(command);
  }

  /** MariaDB: one round trip that inserts, takes over or leaves the row, and returns it. */
  private async upsertReturning(c: AcquireCommand): Promise<AcquireResult> {
    // ON DUPLICATE KEY UPDATE assigns left to right: the outcome columns read the old
    // holder before `token` changes; the columns after `token` test whether it is ours.
    const [row] = await this.query<Row[]>(
      `${this.returningPrefix}INSERT INTO ${this.table} (id, name, token, holder, fence, acquired_at, expires_at)
       VALUES (?, ?, ?, ?, ${NOW}, ${NOW}, ${NOW} + ? * 1000)
       ON DUPLICATE KEY UPDATE
         last_outcome = IF(token IS NOT NULL AND expires_at <= ${NOW}, 'expired', last_outcome),
         last_error = IF(token IS NOT NULL AND expires_at <= ${NOW}, JSON_OBJECT(
           'type', 'LeaseExpiredError', 'name', 'LeaseExpiredError', 'message', ?,
           'fields', JSON_OBJECT('holder', holder, 'fence', fence, 'expiredAt', expires_at DIV 1000)), last_error),
         token = IF((token IS NULL OR expires_at <= ${NOW}) AND NOT ${RESERVED}, VALUES(token), token),
         fence = IF(token <=> VALUES(token), fence + 1, fence),
         holder = IF(token <=> VALUES(token), VALUES(holder), holder),
         acquired_at = IF(token <=> VALUES(token), ${NOW}, acquired_at),
         expires_at = IF(token <=> VALUES(token), VALUES(expires_at), expires_at)
       RETURNING token, fence, acquired_at, expires_at, last_outcome, last_error, ${NOW} AS now`,
      [c.key, c.name, c.token, c.holder, c.ttlMs, c.leaseExpiredMessage, ...this.reserve(c.key)],
    );
    if (row.token === c.token) return granted(row);
    return notGranted(row);
  }

  /** MySQL: a conditional UPDATE (or the first INSERT), then a read of the row it granted. */
  private async updateThenRead(c: AcquireCommand): Promise<AcquireResult> {
    const updated = await this.query<ResultHeader>(
      `UPDATE ${this.table} SET
         last_outcome = IF(token IS NOT NULL, 'expired', last_outcome),
         last_error = IF(token IS NOT NULL, JSON_OBJECT(
           'type', 'LeaseExpiredError', 'name', 'LeaseExpiredError', 'message', ?,
           'fields', JSON_OBJECT('holder', holder, 'fence', fence, 'expiredAt', expires_at DIV 1000)), last_error),
         token = ?, holder = ?, fence = fence + 1, acquired_at = ${NOW}, expires_at = ${NOW} + ? * 1000
       WHERE id = ? AND (token IS NULL OR expires_at <= ${NOW}) AND NOT ${RESERVED}`,
      [c.leaseExpiredMessage, c.token, c.holder, c.ttlMs, c.key, ...this.reserve(c.key)],
    );
    if (updated.affectedRows === 0) {
      try {
        await this.query(
          `INSERT INTO ${this.table} (id, name, token, holder, fence, acquired_at, expires_at)
           VALUES (?, ?, ?, ?, ${NOW}, ${NOW}, ${NOW} + ? * 1000)`,
          [c.key, c.name, c.token, c.holder, c.ttlMs],
        );
      } catch (error) {
        if ((error as { errno?: number }).errno !== ER_DUP_ENTRY) throw error;
      }
    }
    const [row] = await this.query<Row[]>(
      `SELECT token, fence, acquired_at, expires_at, last_outcome, last_error, ${NOW} AS now FROM ${this.table} WHERE id = ?`,
      [c.key],
    );
    if (row !== undefined && row.token === c.token) return granted(row);
    return row === undefined
      ? { acquired: false, expiresAtUs: null, nowUs: null }
      : notGranted(row);
  }

  async extend(key: string, token: string, ttlMs: number): Promise<number | null> {
    const result = await this.query<ResultHeader>(
      `UPDATE ${this.table} SET expires_at = ${NOW} + ? * 1000 WHERE id = ? AND token = ? AND expires_at > ${NOW}`,
      [ttlMs, key, token],
    );
    if (result.affectedRows !== 1) return null;
    const [row] = await this.query<Row[]>(
      `SELECT expires_at FROM ${this.table} WHERE id = ? AND token = ?`,
      [key, token],
    );
    return row === undefined ? null : toNumber(row.expires_at);
  }

  async release(command: ReleaseCommand): Promise<boolean> {
    const { outcome, error, key, token } = command;
    // First in line: release on the line's own session, giving up its GET_LOCK in the same
    // statement; the next process's attempt then waits for this commit on the row lock.
    const throughLine = this.waitQueue?.leaveThrough(
      key,
      async (session) =>
        (
          await this.query<ResultHeader>(
            `UPDATE ${this.table} SET token = NULL, last_outcome = ?, last_error = ?,
               released_at = IF(RELEASE_LOCK(?) IS NULL, ${NOW}, ${NOW}) WHERE id = ? AND token = ?`,
            [outcome, error, queueLockName(this.namespace, key), key, token],
            session,
          )
        ).affectedRows === 1,
      (released) => released,
    );
    if (throughLine) return throughLine;
    const result = await this.query<ResultHeader>(
      `UPDATE ${this.table} SET token = NULL, last_outcome = ?, last_error = ?, released_at = ${NOW} WHERE id = ? AND token = ?`,
      [outcome, error, key, token],
    );
    return result.affectedRows === 1;
  }

  async forceRelease(key: string, error: string): Promise<boolean> {
    const result = await this.query<ResultHeader>(
      `UPDATE ${this.table} SET token = NULL, fence = fence + 1, last_outcome = 'force-released', last_error = ?, released_at = ${NOW}
       WHERE id = ? AND token IS NOT NULL`,
      [error, key],
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
    const result = await this.query<ResultHeader>(
      `DELETE FROM ${this.table} WHERE
         (token IS NULL AND COALESCE(released_at, acquired_at, 0) < ${NOW} - ? * 1000)
         OR (token IS NOT NULL AND expires_at < ${NOW} - ? * 1000)`,
      [olderThanMs, olderThanMs],
    );
    return result.affectedRows;
  }

  async close(): Promise<void> {
    // The pool belongs to TypeORM, which closes it; the wait-queue sessions are ours.
    this.waitQueue?.close();
  }

  /** Runs one autocommit statement (on the pool, or `via` a session), again after a deadlock or lock-wait rollback. */
  private async query<T>(sql: string, values: unknown[], via: MysqlPool = this.pool): Promise<T> {
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
}

/** Not granted: held (until its lease end), or free but kept for the first process in line. */
function notGranted(row: Row): AcquireResult {
  const held = row.token !== null && row.token !== undefined;
  return {
    acquired: false,
    expiresAtUs: held ? toNumber(row.expires_at) : null,
    nowUs: toNumber(row.now),
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
  };
}
