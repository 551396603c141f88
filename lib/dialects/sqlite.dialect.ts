import { performance } from 'node:perf_hooks';
import type { DataSource } from 'typeorm';
import type {
  AcquireCommand,
  AcquireResult,
  LockDialect,
  ReleaseCommand,
  StoredLock,
} from './dialect.interface';
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
}
type DatabaseConstructor = new (file: string, options?: { timeout?: number }) => Database;

/** The database clock, in microseconds since the Unix epoch (millisecond precision). */
const NOW = `(CAST(ROUND(unixepoch('subsec') * 1000) AS INTEGER) * 1000)`;
const COLUMNS =
  'name, token, fence, holder, acquired_at, expires_at, released_at, last_outcome, last_error';
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
  private sql!: ReturnType<SqliteDialect['prepare']>;
  private attempt!: (c: AcquireCommand) => AcquireResult;

  constructor(
    private readonly dataSource: DataSource,
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
      await this.retryBusy(() => this.db.pragma('journal_mode = WAL'));
    }
    const exists = this.db
      .prepare(`SELECT 1 AS found FROM sqlite_master WHERE type = 'table' AND name = ?`)
      .get(this.tableName.split('.').pop());
    if (exists === undefined) return false;
    this.sql = this.prepare();
    const tx = this.db.transaction((c: AcquireCommand) => this.attemptInTransaction(c));
    this.attempt = (c) => tx.immediate(c);
    return true;
  }

  async acquire(command: AcquireCommand): Promise<AcquireResult> {
    if (command.readFirst) {
      const row = this.sql.peek.get(command.key);
      if (row !== undefined && row.held === 1) {
        if (starving(command, Number(row.now))) {
          try {
            this.sql.want.run(command.key);
          } catch (error) {
            if (!isBusy(error)) throw error; // the next poll asks again
          }
        }
        return { acquired: false, expiresAtUs: Number(row.expires_at), nowUs: Number(row.now) };
      }
    }
    try {
      // Mostly the lock is free: one statement (atomic on its own) grants it, as the
      // takeover would. Otherwise the transaction takes an expired lease over, creates
      // the row, or finds who holds it.
      const { token, holder, ttlMs, key, waitingSinceUs } = command;
      const row = this.sql.takeFree.get(token, holder, ttlMs, key, waitingSinceUs);
      return row === undefined ? this.attempt(command) : granted(row);
    } catch (error) {
      // Another process holds SQLite's write lock: this attempt simply did not get in.
      if (isBusy(error)) return { acquired: false, expiresAtUs: null, nowUs: null };
      throw error;
    }
  }

  private attemptInTransaction(c: AcquireCommand): AcquireResult {
    const row = this.takeOver(c) ?? this.sql.insert.get(c);
    if (row !== undefined) return granted(row);
    const current = this.sql.peek.get(c.key);
    if (current === undefined) return { acquired: false, expiresAtUs: null, nowUs: null };
    const nowUs = Number(current.now);
    if (starving(c, nowUs)) this.sql.want.run(c.key);
    // Free but kept for a long waiter: no lease end to wait for.
    const expiresAtUs = current.held === 1 ? Number(current.expires_at) : null;
    return { acquired: false, expiresAtUs, nowUs };
  }

  /** Grants a free or expired lock: its row, or undefined. Positional parameters bind faster than named ones. */
  private takeOver(c: AcquireCommand): unknown[] | undefined {
    return this.sql.takeOver.get(
      c.leaseExpiredMessage,
      c.token,
      c.holder,
      c.ttlMs,
      c.key,
      c.waitingSinceUs,
    );
  }

  async extend(key: string, token: string, ttlMs: number): Promise<number | null> {
    const row = await this.retryBusy(() => this.sql.extend.get(ttlMs, key, token));
    return row === undefined ? null : Number(row.expires_at);
  }

  async release(command: ReleaseCommand): Promise<boolean> {
    const release = () =>
      this.sql.release.run(command.outcome, command.error, command.key, command.token);
    let changes: number;
    try {
      // At once first: waiting for another writer is the exception.
      changes = release().changes;
    } catch (error) {
      if (!isBusy(error)) throw error;
      changes = (await this.retryBusy(release)).changes;
    }
    return changes === 1;
  }

  async forceRelease(key: string, error: string): Promise<boolean> {
    const { changes } = await this.retryBusy(() => this.sql.forceRelease.run(error, key));
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
    return changes;
  }

  async probe(): Promise<boolean> {
    const exists = this.db
      .prepare(`SELECT 1 AS found FROM sqlite_master WHERE type = 'table' AND name = ?`)
      .get(this.tableName.split('.').pop());
    return exists !== undefined;
  }

  async close(): Promise<void> {
    if (this.ownConnection && this.db.open) this.db.close();
  }

  /** Runs a statement again while another process holds the write lock, without blocking the event loop. */
  private async retryBusy<T>(run: () => T): Promise<T> {
    const deadline = performance.now() + BUSY_RETRY_MS;
    for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
      try {
        return run();
      } catch (error) {
        if (!isBusy(error) || performance.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, delay * (0.5 + Math.random() / 2)));
      }
    }
  }

  private prepare() {
    const t = `"${this.tableName.split('.').pop()}"`;
    const prepare = (sql: string) => this.db.prepare(sql);
    // Granting statements return GRANTED_COLUMNS as arrays: an object row costs
    // better-sqlite3 a name lookup per column (about a microsecond per row).
    const granting = (sql: string) => prepare(`${sql} RETURNING ${GRANTED_COLUMNS}`).raw(true);
    return {
      peek: prepare(
        `SELECT token IS NOT NULL AND expires_at > ${NOW} AS held, expires_at, ${NOW} AS now FROM ${t} WHERE id = ?`,
      ),
      takeFree: granting(
        `UPDATE ${t} SET token = ?, holder = ?, fence = fence + 1, acquired_at = ${NOW}, expires_at = ${NOW} + ? * 1000,
           wanted_at = NULL
         WHERE id = ? AND token IS NULL AND ${MAY_TAKE}`,
      ),
      // A waiter that has waited STARVING_MS asks for priority (again at every poll).
      want: prepare(`UPDATE ${t} SET wanted_at = ${NOW} WHERE id = ?`),
      takeOver: granting(
        `UPDATE ${t} SET
           last_outcome = CASE WHEN token IS NULL THEN last_outcome ELSE 'expired' END,
           last_error = CASE WHEN token IS NULL THEN last_error ELSE json_object(
             'type', 'LeaseExpiredError', 'name', 'LeaseExpiredError', 'message', ?,
             'fields', json_object('holder', holder, 'fence', fence, 'expiredAt', expires_at / 1000)) END,
           token = ?, holder = ?, fence = fence + 1, acquired_at = ${NOW}, expires_at = ${NOW} + ? * 1000,
           wanted_at = NULL
         WHERE id = ? AND (token IS NULL OR expires_at <= ${NOW}) AND ${MAY_TAKE}`,
      ),
      insert: granting(
        `INSERT INTO ${t} (id, name, token, holder, fence, acquired_at, expires_at)
         VALUES (@key, @name, @token, @holder, ${NOW}, ${NOW}, ${NOW} + @ttlMs * 1000)
         ON CONFLICT (id) DO NOTHING`,
      ),
      extend: prepare(
        `UPDATE ${t} SET expires_at = ${NOW} + ? * 1000 WHERE id = ? AND token = ? AND expires_at > ${NOW} RETURNING expires_at`,
      ),
      release: prepare(
        `UPDATE ${t} SET token = NULL, last_outcome = ?, last_error = ?, released_at = ${NOW} WHERE id = ? AND token = ?`,
      ),
      forceRelease: prepare(
        `UPDATE ${t} SET token = NULL, fence = fence + 1, last_outcome = 'force-released', last_error = ?, released_at = ${NOW}
         WHERE id = ? AND token IS NOT NULL`,
      ),
      inspect: prepare(`SELECT ${COLUMNS}, ${NOW} AS now FROM ${t} WHERE id = ?`),
      list: prepare(`SELECT ${COLUMNS}, ${NOW} AS now FROM ${t} ORDER BY name`),
      purge: prepare(
        `DELETE FROM ${t} WHERE (token IS NULL AND COALESCE(released_at, acquired_at, 0) < ${NOW} - @ms * 1000)
           OR (token IS NOT NULL AND expires_at < ${NOW} - @ms * 1000)`,
      ),
    };
  }
}

/** What the granting statements return, in this order (see `granted`). */
const GRANTED_COLUMNS = 'fence, acquired_at, expires_at, last_outcome, last_error';

/**
 * SQLite has no server to queue waiters in: a process releasing and re-taking a lock in a
 * loop gets it back before a polling waiter looks. So a waiter that has waited this long
 * marks the row (`wanted_at`, at every poll), and while that mark is fresh only a caller
 * that has waited this long may take the lock: newcomers wait their turn.
 */
const STARVING_MS = 100;
/** A mark not renewed for this long is ignored (its waiter gave up or polls slowly). */
const WANTED_FOR_MS = 1_000;
/** Grant condition (parameter: the caller's waiting-since, database clock in µs, or NULL). */
const MAY_TAKE = `(wanted_at IS NULL OR wanted_at <= ${NOW} - ${WANTED_FOR_MS * 1000}
  OR ? <= ${NOW} - ${STARVING_MS * 1000})`;

/** Whether the caller has waited long enough to ask for priority. */
function starving(command: AcquireCommand, nowUs: number): boolean {
  return command.waitingSinceUs !== null && nowUs - command.waitingSinceUs >= STARVING_MS * 1000;
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
  };
}

function isBusy(error: unknown): boolean {
  const code = (error as { code?: string }).code;
  return code === 'SQLITE_BUSY' || code === 'SQLITE_BUSY_SNAPSHOT' || code === 'SQLITE_LOCKED';
}
