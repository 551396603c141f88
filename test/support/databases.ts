import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DataSourceOptions } from 'typeorm';

/** A database the suites run against. */
export interface TestDatabase {
  /** `sqlite`, `postgres` or `mariadb`. */
  kind: 'sqlite' | 'postgres' | 'mariadb';
  /** A label for test titles. */
  label: string;
  /** Connection URL (a file path for SQLite). */
  url: string;
  /** TypeORM options for a fresh data source on this database. */
  options(): DataSourceOptions;
}

/** Environment variables naming the server databases. */
export const DATABASE_ENV = {
  postgres: 'RLOCK_TEST_POSTGRES_URL',
  mariadb: 'RLOCK_TEST_MYSQL_URL',
} as const;

/** Set by CI: every database must be configured and reachable. */
export const REQUIRE_ALL_ENV = 'RLOCK_TEST_REQUIRE_ALL';

/** A fresh SQLite file in a temporary directory. */
export function sqliteFile(): string {
  return join(mkdtempSync(join(tmpdir(), 'rlock-test-')), 'locks.sqlite');
}

/** Builds the test database description for a kind and URL. */
export function testDatabase(kind: TestDatabase['kind'], url: string): TestDatabase {
  switch (kind) {
    case 'sqlite':
      return {
        kind,
        label: 'SQLite',
        url,
        options: () => ({ type: 'better-sqlite3', database: url }),
      };
    case 'postgres':
      return { kind, label: 'PostgreSQL', url, options: () => ({ type: 'postgres', url }) };
    case 'mariadb':
      return { kind, label: 'MariaDB', url, options: () => ({ type: 'mariadb', url }) };
  }
}

/** The databases configured for this run: SQLite always, servers when their URL is set. */
export function testDatabases(): TestDatabase[] {
  const list = [testDatabase('sqlite', sqliteFile())];
  const pg = process.env[DATABASE_ENV.postgres];
  if (pg) list.push(testDatabase('postgres', pg));
  const my = process.env[DATABASE_ENV.mariadb];
  if (my) list.push(testDatabase('mariadb', my));
  return list;
}

let tableCounter = 0;
/** A table name no other test file uses, so that suites can run in parallel on one database. */
export function uniqueTableName(prefix = 'rlock_t'): string {
  tableCounter += 1;
  return `${prefix}_${process.pid}_${tableCounter}`;
}
