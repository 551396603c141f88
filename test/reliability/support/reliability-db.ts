import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRLockMigration, type RLockModuleOptions } from '../../../lib';
import { createTestApp, type TestApp } from '../../support/app';
import { uniqueTableName, type TestDatabase } from '../../support/databases';
import type { ChildConfig } from './agent';
import type { HistoryEvent } from './history';

/** Result of one statement: rows and affected-row count, whatever the driver. */
export interface ExecResult {
  affected: number;
  records: any[];
}

/**
 * One database as the reliability tests use it: a private lock table and key/value table
 * (dropped at the end), an in-process app for inspection and administration, and the
 * database-side tools the faults need (killing sessions, reading their states).
 */
export class ReliabilityDb {
  readonly eventsDir = mkdtempSync(join(tmpdir(), 'rlock-rel-'));

  private constructor(
    readonly db: TestDatabase,
    readonly app: TestApp,
    readonly table: string,
    readonly kvTable: string,
  ) {}

  /** Creates the tables (the lock table and its waiters table through the module's entities, key/value table by hand). */
  static async open(db: TestDatabase, options: RLockModuleOptions = {}): Promise<ReliabilityDb> {
    const table = uniqueTableName('rlock_rel');
    const app = await createTestApp(db, { tableName: table, ...options });
    const rdb = new ReliabilityDb(db, app, table, `${table}_kv`);
    await rdb.exec(
      `CREATE TABLE ${rdb.kvTable} (k VARCHAR(64) NOT NULL PRIMARY KEY, value TEXT NOT NULL, fence BIGINT NOT NULL)`,
    );
    return rdb;
  }

  /** The lock service of the in-process app. */
  get service() {
    return this.app.service;
  }

  /** Runs one statement; `?` placeholders. */
  async exec(text: string, params: unknown[] = []): Promise<ExecResult> {
    let n = 0;
    const sql = this.db.kind === 'postgres' ? text.replace(/\?/g, () => `$${++n}`) : text;
    const runner = this.app.dataSource.createQueryRunner();
    try {
      const result = await runner.query(sql, params, true);
      return { affected: result.affected ?? 0, records: result.records ?? [] };
    } finally {
      await runner.release();
    }
  }

  /** Inserts (or resets) a key of the key/value table with fence 0. */
  async seed(key: string, value = '0'): Promise<void> {
    await this.exec(`DELETE FROM ${this.kvTable} WHERE k = ?`, [key]);
    await this.exec(`INSERT INTO ${this.kvTable} (k, value, fence) VALUES (?, ?, 0)`, [key, value]);
  }

  /** Reads a key of the key/value table. */
  async read(key: string): Promise<{ value: string; fence: number }> {
    const { records } = await this.exec(`SELECT value, fence FROM ${this.kvTable} WHERE k = ?`, [
      key,
    ]);
    return { value: String(records[0].value), fence: Number(records[0].fence) };
  }

  /** The config a child process needs to reach this database and table. */
  childConfig(extra: Partial<ChildConfig> = {}): ChildConfig {
    return { kind: this.db.kind, url: this.db.url, table: this.table, ...extra };
  }

  /** A fresh events file for one child. */
  eventsFile(label: string): string {
    return join(this.eventsDir, `${label}-${Math.random().toString(36).slice(2, 8)}.jsonl`);
  }

  /** Every history event written by the children of this database so far. */
  readEvents(): HistoryEvent[] {
    const events: HistoryEvent[] = [];
    for (const file of readdirSync(this.eventsDir)) {
      for (const line of readFileSync(join(this.eventsDir, file), 'utf8').split('\n')) {
        if (line.trim() !== '') events.push(JSON.parse(line) as HistoryEvent);
      }
    }
    return events;
  }

  /** Terminates server sessions by id (only ids our own children reported). */
  async killSessions(ids: number[]): Promise<void> {
    if (this.db.kind === 'postgres') {
      await this.exec(`SELECT pg_terminate_backend(pid) FROM unnest(?::int[]) AS pid`, [ids]);
    } else if (this.db.kind === 'mariadb') {
      for (const id of ids) {
        await this.exec(`KILL CONNECTION ${Number(id)}`).catch(() => undefined);
      }
    }
  }

  /** How many of these sessions are busy (running a statement or inside a transaction). */
  async busySessions(ids: number[]): Promise<{ open: number; busy: number }> {
    if (ids.length === 0) return { open: 0, busy: 0 };
    // Busy = pinned: in one statement for half a second or more (a renewal or a read that
    // happens to run at the sampling instant is not a session a waiter keeps busy).
    if (this.db.kind === 'postgres') {
      const { records } = await this.exec(
        `SELECT state <> 'idle' AND clock_timestamp() - state_change > interval '500 milliseconds' AS busy
         FROM pg_stat_activity WHERE pid = ANY(?::int[])`,
        [ids],
      );
      return { open: records.length, busy: records.filter((r) => r.busy === true).length };
    }
    const { records } = await this.exec(
      `SELECT command <> 'Sleep' AND time_ms > 500 AS busy
       FROM information_schema.processlist WHERE id IN (${ids.map(Number).join(',')})`,
    );
    return { open: records.length, busy: records.filter((r) => Number(r.busy) === 1).length };
  }

  /** Columns of our own tables (the lock table, key/value table and `extra`), to prove input changed no schema. */
  async schema(extra: string[] = []): Promise<string[]> {
    const tables = [this.table, this.kvTable, ...extra];
    if (this.db.kind === 'sqlite') {
      const { records } = await this.exec(
        `SELECT type, name, sql FROM sqlite_master ORDER BY name`,
      );
      return records.map((r) => `${r.type}:${r.name}:${r.sql}`);
    }
    const { records } = await this.exec(
      `SELECT table_name AS t, column_name AS c, data_type AS d FROM information_schema.columns
       WHERE table_schema = ${this.db.kind === 'postgres' ? 'current_schema()' : 'DATABASE()'}
         AND table_name IN (${tables.map(() => '?').join(', ')})
       ORDER BY table_name, column_name`,
      tables,
    );
    return records.map((r) => `${r.t}.${r.c}:${r.d}`);
  }

  /**
   * Drops the tables (the lock table and its waiters table through the library's migration)
   * and closes the app. TypeORM's synchronize also created, empty, the lock tables of the
   * databases opened before in this test file (the module's entities of one default data
   * source accumulate across apps): those are dropped too.
   */
  async close(): Promise<void> {
    await this.exec(`DROP TABLE IF EXISTS ${this.kvTable}`).catch(() => undefined);
    const [, prefix, last] = /^(.*_)(\d+)$/.exec(this.table)!;
    const runner = this.app.dataSource.createQueryRunner();
    try {
      for (let n = Number(last); n >= 1; n--) {
        await new (createRLockMigration(`${prefix}${n}`))().down(runner);
      }
    } catch (error) {
      // Left behind: uniquely named tables in a test database; say so.
      process.stderr.write(`[reliability] tables ${prefix}*(_waiters) left: ${String(error)}\n`);
    } finally {
      await runner.release();
    }
    await this.app.close();
    rmSync(this.eventsDir, { recursive: true, force: true });
  }
}
