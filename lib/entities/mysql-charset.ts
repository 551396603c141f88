import { splitTableName } from './rlock.entity';
import { waiterTableName } from './rlock-waiter.entity';

/**
 * The character set of the lock tables on MySQL and MariaDB: all of Unicode (4-byte emoji
 * included), whatever the server's default (latin1, utf8mb3).
 */
export const MYSQL_CHARSET = 'utf8mb4';
/** Their collation: binary, so that names, keys and tokens compare byte by byte. */
export const MYSQL_COLLATION = 'utf8mb4_bin';

/** Whether a TypeORM driver type is MySQL or MariaDB. */
export function isMysqlType(type: unknown): boolean {
  return type === 'mysql' || type === 'mariadb';
}

/**
 * The character set and collation of a string column of the lock tables for a TypeORM
 * driver type: set on MySQL/MariaDB only (PostgreSQL and SQLite reject them).
 */
export function columnCharset(
  driverType: unknown,
  columnType: string,
): { charset?: string; collation?: string } {
  const text = columnType === 'varchar' || columnType === 'text';
  return text && isMysqlType(driverType)
    ? { charset: MYSQL_CHARSET, collation: MYSQL_COLLATION }
    : {};
}

/** The statement that converts a MySQL/MariaDB table (`schema.table` or `table`) to that character set. */
export function convertTableStatement(tableName: string): string {
  const { schema, table } = splitTableName(tableName);
  const quoted = schema === undefined ? `\`${table}\`` : `\`${schema}\`.\`${table}\``;
  return `ALTER TABLE ${quoted} CONVERT TO CHARACTER SET ${MYSQL_CHARSET} COLLATE ${MYSQL_COLLATION}`;
}

/**
 * On MySQL/MariaDB, converts the lock table of `tableName` and its waiters table to
 * utf8mb4 with a binary collation when a string column of theirs has another collation
 * (a table TypeORM synchronized takes the server's default). Returns the tables converted.
 */
export async function convertToMysqlCharset(
  query: (sql: string, values: unknown[]) => Promise<unknown>,
  tableName: string,
): Promise<string[]> {
  const tables = [tableName, waiterTableName(tableName)];
  const converted: string[] = [];
  for (const name of tables) {
    const { schema, table } = splitTableName(name);
    const rows = (await query(
      `SELECT COUNT(*) AS n FROM information_schema.COLUMNS
       WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?
         AND COLLATION_NAME IS NOT NULL AND COLLATION_NAME <> ?`,
      [schema ?? null, table, MYSQL_COLLATION],
    )) as { n: number | string }[];
    if (Number(rows[0]?.n ?? 0) === 0) continue;
    await query(convertTableStatement(name), []);
    converted.push(name);
  }
  return converted;
}
