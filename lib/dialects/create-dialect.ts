import type { DataSource } from 'typeorm';
import { RLockConfigurationError } from '../errors/rlock-configuration.error';
import { MESSAGES } from '../rlock.messages';
import type { LockDialect } from './dialect.interface';
import { MysqlDialect } from './mysql.dialect';
import { PostgresDialect } from './postgres.dialect';
import { SqliteDialect } from './sqlite.dialect';

/** Picks the dialect for a TypeORM data source; any other driver fails at startup. */
export function createDialect(dataSource: DataSource, tableName: string): LockDialect {
  const type = dataSource.options.type;
  switch (type) {
    case 'better-sqlite3':
      return new SqliteDialect(dataSource, tableName);
    case 'postgres':
    case 'cockroachdb':
      return new PostgresDialect(dataSource, tableName);
    case 'mysql':
    case 'mariadb':
      return new MysqlDialect(dataSource, tableName);
    default:
      throw new RLockConfigurationError(MESSAGES.unsupportedDatabase(String(type)));
  }
}
