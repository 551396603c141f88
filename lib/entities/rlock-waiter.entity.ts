import { entityColumns } from './column-definition';
import { EntitySchema } from 'typeorm';
import { DEFAULT_TABLE_NAME } from '../rlock.constants';
import { splitTableName } from './rlock.entity';

/**
 * A place in the line of processes waiting for one lock: a row of the waiters table
 * (`<lock table>_waiters`). Instants are microseconds since the Unix epoch (database clock).
 * @publicApi
 */
export interface RLockWaiterRow {
  /** The owner token the lock is granted with when this place's turn comes. */
  token: string;
  /** The lock's key (`id` of its row in the lock table). */
  lockId: string;
  /** Label of the waiting holder. */
  holder: string;
  /** Lease the waiter asked for. */
  ttlMs: string;
  /** The waiter's `maxHoldMs`, for the hand-off's hold limit. */
  maxHoldMs: string | null;
  /** The waiting process (renews its places, and is rung when handed the lock). */
  owner: string;
  /** How a release rings the waiting process's doorbell (database-specific), or null. */
  doorbell: string | null;
  /** When the place was taken: the line's order. */
  queuedAt: string;
  /** The place's own short lease: a place not renewed by then belongs to a dead process. */
  expiresAt: string;
}

/** The columns, shared by the entity and the migration. */
export const RLOCK_WAITER_COLUMNS = [
  { property: 'token', name: 'token', type: 'varchar', length: 32, primary: true },
  { property: 'lockId', name: 'lock_id', type: 'varchar', length: 64 },
  { property: 'holder', name: 'holder', type: 'varchar', length: 255 },
  { property: 'ttlMs', name: 'ttl_ms', type: 'bigint' },
  { property: 'maxHoldMs', name: 'max_hold_ms', type: 'bigint', nullable: true },
  { property: 'owner', name: 'owner', type: 'varchar', length: 32 },
  { property: 'doorbell', name: 'doorbell', type: 'varchar', length: 255, nullable: true },
  { property: 'queuedAt', name: 'queued_at', type: 'bigint' },
  { property: 'expiresAt', name: 'expires_at', type: 'bigint' },
] as const;

/** Name of the waiters table of a lock table (same schema). */
export function waiterTableName(tableName: string): string {
  return `${tableName}_waiters`;
}

/** The waiters table's indexes: the line of one lock in order, and the places of one process. */
export function waiterIndexes(tableName: string): { name: string; columns: string[] }[] {
  const { table } = splitTableName(waiterTableName(tableName));
  return [
    { name: `${table}_line`, columns: ['lock_id', 'queued_at'] },
    { name: `${table}_owner`, columns: ['owner'] },
  ];
}

const schemas = new Map<string, EntitySchema<RLockWaiterRow>>();

/**
 * The TypeORM entity of the waiters table; `RLockModule` registers it with the lock
 * table's (see `createRLockEntities()`).
 * @publicApi
 */
export function createRLockWaiterEntity(
  tableName: string = DEFAULT_TABLE_NAME,
): EntitySchema<RLockWaiterRow> {
  let schema = schemas.get(tableName);
  if (schema === undefined) {
    const { schema: dbSchema, table } = splitTableName(waiterTableName(tableName));
    const byColumn = new Map<string, string>(RLOCK_WAITER_COLUMNS.map((c) => [c.name, c.property]));
    schema = new EntitySchema<RLockWaiterRow>({
      name:
        tableName === DEFAULT_TABLE_NAME
          ? 'RLockWaiter'
          : `RLockWaiter_${tableName.replace('.', '_')}`,
      tableName: table,
      schema: dbSchema,
      columns: entityColumns(RLOCK_WAITER_COLUMNS) as never,
      indices: waiterIndexes(tableName).map((index) => ({
        name: index.name,
        columns: index.columns.map((column) => byColumn.get(column)!) as never,
      })),
    });
    schemas.set(tableName, schema);
  }
  return schema;
}
