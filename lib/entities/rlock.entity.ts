import { entityColumns } from './column-definition';
import { EntitySchema } from 'typeorm';
import { DEFAULT_TABLE_NAME } from '../rlock.constants';
import { createRLockWaiterEntity } from './rlock-waiter.entity';

/**
 * A row of the lock table. Instants are microseconds since the Unix epoch, taken from
 * the database's clock.
 * @publicApi
 */
export interface RLockRow {
  /** SHA-256 (hex) of the name's UTF-8 bytes: the primary key. */
  id: string;
  /** The lock's name. */
  name: string;
  /** Owner token of the current acquisition; null when free. */
  token: string | null;
  /** Fencing token: grows with every grant, never goes back. */
  fence: string;
  /** Label of the current (or most recent) holder. */
  holder: string | null;
  acquiredAt: string | null;
  expiresAt: string | null;
  releasedAt: string | null;
  /** How the previous holding ended. */
  lastOutcome: string | null;
  /** The error the previous holder left (JSON). */
  lastError: string | null;
  /** After a release with `minHoldMs`: the lock stays taken until then. */
  holdUntil: string | null;
  /** With `maxHoldMs`: when the current holding must end, renewed or not. */
  holdLimit: string | null;
  /** With `oncePer`: the start of the period (tick) whose run last took the lock. */
  lastTickAt: string | null;
}

/** The columns, shared by the entity and the migration. */
export const RLOCK_COLUMNS = [
  { property: 'id', name: 'id', type: 'varchar', length: 64, primary: true },
  { property: 'name', name: 'name', type: 'varchar', length: 255 },
  { property: 'token', name: 'token', type: 'varchar', length: 32, nullable: true },
  { property: 'fence', name: 'fence', type: 'bigint' },
  { property: 'holder', name: 'holder', type: 'varchar', length: 255, nullable: true },
  { property: 'acquiredAt', name: 'acquired_at', type: 'bigint', nullable: true },
  { property: 'expiresAt', name: 'expires_at', type: 'bigint', nullable: true },
  { property: 'releasedAt', name: 'released_at', type: 'bigint', nullable: true },
  { property: 'lastOutcome', name: 'last_outcome', type: 'varchar', length: 16, nullable: true },
  { property: 'lastError', name: 'last_error', type: 'text', nullable: true },
  { property: 'holdUntil', name: 'hold_until', type: 'bigint', nullable: true },
  { property: 'holdLimit', name: 'hold_limit', type: 'bigint', nullable: true },
  { property: 'lastTickAt', name: 'last_tick_at', type: 'bigint', nullable: true },
] as const;

/** The columns added by schema version 2 (see `createRLockWaitersMigration`). */
export const RLOCK_COLUMNS_SINCE_2 = ['hold_until', 'hold_limit', 'last_tick_at'] as const;

/** Splits `schema.table` into its parts. */
export function splitTableName(tableName: string): { schema?: string; table: string } {
  const dot = tableName.indexOf('.');
  return dot === -1
    ? { table: tableName }
    : { schema: tableName.slice(0, dot), table: tableName.slice(dot + 1) };
}

const schemas = new Map<string, EntitySchema<RLockRow>>();

/**
 * The TypeORM entity of the lock table; `RLockModule` registers it through
 * `TypeOrmModule.forFeature()`. Add it to `entities` yourself if your data source does
 * not use `autoLoadEntities`. One schema object per table name.
 * @publicApi
 */
export function createRLockEntity(tableName: string = DEFAULT_TABLE_NAME): EntitySchema<RLockRow> {
  let schema = schemas.get(tableName);
  if (schema === undefined) {
    const { schema: dbSchema, table } = splitTableName(tableName);
    schema = new EntitySchema<RLockRow>({
      name: tableName === DEFAULT_TABLE_NAME ? 'RLock' : `RLock_${tableName.replace('.', '_')}`,
      tableName: table,
      schema: dbSchema,
      columns: entityColumns(RLOCK_COLUMNS) as never,
    });
    schemas.set(tableName, schema);
  }
  return schema;
}

/**
 * The entities of a lock table: the lock table and its waiters table. Spread them into
 * your data source's `entities` if it does not use `autoLoadEntities`.
 * @publicApi
 */
export function createRLockEntities(tableName: string = DEFAULT_TABLE_NAME): EntitySchema[] {
  return [
    createRLockEntity(tableName) as EntitySchema,
    createRLockWaiterEntity(tableName) as EntitySchema,
  ];
}
