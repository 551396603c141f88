import type { TypeOrmModuleOptions } from '@nestjs/typeorm';

/**
 * TypeORM options for a database URL: `postgres://…` (PostgreSQL), `mysql://…` or
 * `mariadb://…` (MariaDB and MySQL through mysql2), anything else a SQLite file path.
 */
export function databaseOptions(url: string): TypeOrmModuleOptions {
  // The sample lets TypeORM create its tables; production apps run migrations instead
  // (nestjs-rlock ships createRLockMigration() for its own table).
  const common = { synchronize: true, autoLoadEntities: true } as const;
  if (/^postgres(ql)?:\/\//.test(url)) return { ...common, type: 'postgres', url };
  if (/^(mysql|mariadb):\/\//.test(url)) {
    return { ...common, type: 'mariadb', url: url.replace(/^mariadb:/, 'mysql:') };
  }
  const file = url.replace(/^sqlite:(\/\/)?/, '');
  return { ...common, type: 'better-sqlite3', database: file, enableWAL: true };
}

/** A short label of the database kind, for logs. */
export function databaseLabel(url: string): string {
  if (/^postgres(ql)?:\/\//.test(url)) return 'PostgreSQL';
  if (/^(mysql|mariadb):\/\//.test(url)) return 'MariaDB/MySQL';
  return 'SQLite';
}
