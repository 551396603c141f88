import { Table, TableColumn, TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';
import {
  RLOCK_WAITER_COLUMNS,
  waiterIndexes,
  waiterTableName,
} from '../entities/rlock-waiter.entity';
import { tableColumns } from '../entities/column-definition';
import { convertToMysqlCharset, isMysqlType } from '../entities/mysql-charset';
import { RLOCK_COLUMNS_SINCE_2, splitTableName } from '../entities/rlock.entity';
import { RLOCK_SCHEMA_VERSION, SCHEMA_ROW } from '../entities/schema-version';
import { DEFAULT_TABLE_NAME } from '../rlock.constants';

/**
 * Creates the waiters table of `tableName` with its indexes (no-op when it exists) and
 * records the schema version in it.
 */
export async function createWaitersTable(queryRunner: QueryRunner, tableName: string) {
  const { schema, table } = splitTableName(waiterTableName(tableName));
  await queryRunner.createTable(
    new Table({
      name: table,
      schema,
      columns: tableColumns(RLOCK_WAITER_COLUMNS, queryRunner.connection.options.type),
      indices: waiterIndexes(tableName).map(
        (index) => new TableIndex({ name: index.name, columnNames: index.columns }),
      ),
    }),
    true,
  );
  const r = SCHEMA_ROW;
  await queryRunner.manager
    .createQueryBuilder()
    .insert()
    .into(schema ? `${schema}.${table}` : table, [
      'token',
      'lock_id',
      'holder',
      'ttl_ms',
      'owner',
      'queued_at',
      'expires_at',
    ])
    .values({
      token: r.token,
      lock_id: r.lockId,
      holder: r.holder,
      ttl_ms: r.ttlMs,
      owner: r.owner,
      queued_at: String(RLOCK_SCHEMA_VERSION),
      expires_at: r.expiresAt,
    })
    .orIgnore()
    .execute();
}

/** Drops the waiters table of `tableName` (no-op when missing). */
export async function dropWaitersTable(queryRunner: QueryRunner, tableName: string) {
  const { schema, table } = splitTableName(waiterTableName(tableName));
  await queryRunner.dropTable(schema ? `${schema}.${table}` : table, true);
}

/**
 * The upgrade from nestjs-rlock 0.1 (schema 1 to 2): adds the lock table's hold columns
 * (`hold_until`, `hold_limit`, `last_tick_at`), drops its `wanted_at` column, which 0.2 no
 * longer uses, and creates the waiters table (`<table>_waiters`, the line of processes
 * waiting for each lock). Add the returned class to your data source's `migrations`
 * after the one that created the lock table. A new database needs only
 * `createRLockMigration()`, which creates both tables.
 * @publicApi
 */
export function createRLockWaitersMigration(
  tableName: string = DEFAULT_TABLE_NAME,
  timestamp = 1764547200000,
): new () => MigrationInterface {
  const { schema, table } = splitTableName(tableName);
  const className = `CreateRLockWaiters${table.replace(/[^A-Za-z0-9]/g, '')}${timestamp}`;
  const qualified = schema ? `${schema}.${table}` : table;
  const migration = class implements MigrationInterface {
    name = className;

    async up(queryRunner: QueryRunner): Promise<void> {
      for (const name of RLOCK_COLUMNS_SINCE_2) {
        if (await queryRunner.hasColumn(qualified, name)) continue;
        await queryRunner.addColumn(
          qualified,
          new TableColumn({ name, type: 'bigint', isNullable: true }),
        );
      }
      if (await queryRunner.hasColumn(qualified, 'wanted_at')) {
        await queryRunner.dropColumn(qualified, 'wanted_at');
      }
      // MySQL/MariaDB: a 0.1 table has the server's default character set (latin1,
      // utf8mb3), which cannot hold every name: utf8mb4 with a binary collation.
      if (isMysqlType(queryRunner.connection.options.type)) {
        await convertToMysqlCharset((sql, values) => queryRunner.query(sql, values), tableName);
      }
      // Last: it records the schema version.
      await createWaitersTable(queryRunner, tableName);
    }

    async down(queryRunner: QueryRunner): Promise<void> {
      await dropWaitersTable(queryRunner, tableName);
    }
  };
  Object.defineProperty(migration, 'name', { value: className });
  return migration;
}
