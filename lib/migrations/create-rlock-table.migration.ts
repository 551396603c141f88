import { Table, type MigrationInterface, type QueryRunner } from 'typeorm';
import { tableColumns } from '../entities/column-definition';
import { RLOCK_COLUMNS, splitTableName } from '../entities/rlock.entity';
import { DEFAULT_TABLE_NAME } from '../rlock.constants';
import { createWaitersTable, dropWaitersTable } from './create-rlock-waiters.migration';

/**
 * A TypeORM migration class that creates the lock table and its waiters table, for applications that run
 * with `synchronize: false`. Add the returned class to your data source's `migrations`.
 *
 * @example
 * migrations: [createRLockMigration()] // or createRLockMigration('app_locks')
 * @publicApi
 */
export function createRLockMigration(
  tableName: string = DEFAULT_TABLE_NAME,
  timestamp = 1764201600000,
): new () => MigrationInterface {
  const { schema, table } = splitTableName(tableName);
  const className = `CreateRLockTable${table.replace(/[^A-Za-z0-9]/g, '')}${timestamp}`;
  const migration = class implements MigrationInterface {
    name = className;

    async up(queryRunner: QueryRunner): Promise<void> {
      await queryRunner.createTable(
        new Table({
          name: table,
          schema,
          columns: tableColumns(RLOCK_COLUMNS, queryRunner.connection.options.type),
        }),
        true,
      );
      await createWaitersTable(queryRunner, tableName);
    }

    async down(queryRunner: QueryRunner): Promise<void> {
      await dropWaitersTable(queryRunner, tableName);
      await queryRunner.dropTable(schema ? `${schema}.${table}` : table, true);
    }
  };
  Object.defineProperty(migration, 'name', { value: className });
  return migration;
}
