import type { DataSource } from 'typeorm';
import type {
  AcquireCommand,
  AcquireResult,
  LockDialect,
  ReleaseCommand,
  StoredLock,
} from './dialect.interface';
import { toNumber, toStoredLock } from './dialect.utils';

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
}

/** The database clock, in microseconds since the Unix epoch (UTC, whatever the session time zone). */
const NOW = `TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))`;
const COLUMNS =
  'name, token, fence, holder, acquired_at, expires_at, released_at, last_outcome, last_error';
const ER_NO_SUCH_TABLE = 1146;
const ER_DUP_ENTRY = 1062;
/** Errors after which InnoDB or Galera rolled the statement back and it can simply run again. */
const RETRYABLE = new Set([1213 /* deadlock */, 1205 /* lock wait timeout */]);
const MAX_RETRIES = 5;

/**
 * MySQL and MariaDB through `mysql2`, on the pool TypeORM already opened. On MariaDB
 * 10.5+ an attempt is one `INSERT … ON DUPLICATE KEY UPDATE … RETURNING` round trip;
 * on MySQL (no RETURNING) a conditional UPDATE followed by a read of the granted row.
 */
export class MysqlDialect implements LockDialect {
  readonly database = 'MySQL/MariaDB';
  private readonly table: string;
  private readonly pool: MysqlPool;
  private returning = false;
  /** Put before `INSERT … RETURNING` (Galera: see init()). */
  private returningPrefix = '';

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
    const driver = dataSource.driver as unknown as {
      pool?: MysqlPool;
      poolCluster?: { of(pattern: string): MysqlPool };
    };
    this.pool = driver.pool ?? driver.poolCluster!.of('MASTER');
  }

  async init(): Promise<boolean> {
    const [version] = await this.query<Row[]>('SELECT VERSION() AS version', []);
    const match = /^(\d+)\.(\d+)\.\d+-MariaDB/i.exec(String(version.version));
    this.returning =
      this.options.returning ??
      (match !== null &&
        (Number(match[1]) > 10 || (Number(match[1]) === 10 && Number(match[2]) >= 5)));
    if (this.returning) {
      // Galera re-runs an autocommit statement that lost a certification conflict
      // (wsrep_retry_autocommit); the rows RETURNING sent may then describe the rolled-back
      // run (measured: overlaps and unseen grants). Let the conflict surface as 1213 and
      // retry it here instead.
      const [wsrep] = await this.query<Row[]>(`SHOW VARIABLES LIKE 'wsrep_on'`, []);
      if (wsrep !== undefined && wsrep.Value === 'ON') {
        this.returningPrefix = 'SET STATEMENT wsrep_retry_autocommit = 0 FOR ';
      }
    }
    return this.probe();
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
    if (command.readFirst) {
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
         token = IF(token IS NULL OR expires_at <= ${NOW}, VALUES(token), token),
         fence = IF(token <=> VALUES(token), fence + 1, fence),
         holder = IF(token <=> VALUES(token), VALUES(holder), holder),
         acquired_at = IF(token <=> VALUES(token), ${NOW}, acquired_at),
         expires_at = IF(token <=> VALUES(token), VALUES(expires_at), expires_at)
       RETURNING token, fence, acquired_at, expires_at, last_outcome, last_error, ${NOW} AS now`,
      [c.key, c.name, c.token, c.holder, c.ttlMs, c.leaseExpiredMessage],
    );
    if (row.token === c.token) return granted(row);
    return { acquired: false, expiresAtUs: toNumber(row.expires_at), nowUs: toNumber(row.now) };
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
       WHERE id = ? AND (token IS NULL OR expires_at <= ${NOW})`,
      [c.leaseExpiredMessage, c.token, c.holder, c.ttlMs, c.key],
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
    return {
      acquired: false,
      expiresAtUs: row === undefined ? null : toNumber(row.expires_at),
      nowUs: row === undefined ? null : toNumber(row.now),
    };
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
    const result = await this.query<ResultHeader>(
      `UPDATE ${this.table} SET token = NULL, last_outcome = ?, last_error = ?, released_at = ${NOW} WHERE id = ? AND token = ?`,
      [command.outcome, command.error, command.key, command.token],
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
    // The pool belongs to TypeORM, which closes it.
  }

  /** Runs one autocommit statement, again after a deadlock or lock-wait rollback. */
  private async query<T>(sql: string, values: unknown[]): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await new Promise<T>((resolve, reject) =>
          this.pool.query(sql, values, (error, result) =>
            error ? reject(error) : resolve(result as T),
          ),
        );
      } catch (error) {
        if (attempt >= MAX_RETRIES || !RETRYABLE.has((error as { errno?: number }).errno ?? 0)) {
          throw error;
        }
      }
    }
  }
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
