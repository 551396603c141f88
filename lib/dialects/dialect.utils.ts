import type { LockOutcome } from '../interfaces/lock-state.interface';
import type { StoredLock } from './dialect.interface';

/** Converts a bigint column value (number or string, by driver) to a number. */
export function toNumber(value: unknown): number {
  return typeof value === 'number' ? value : Number(value);
}

/** Converts a nullable bigint column value. */
export function toNullableNumber(value: unknown): number | null {
  return value === null || value === undefined ? null : toNumber(value);
}

/** Maps a row selected with the standard column list to a {@link StoredLock}. */
export function toStoredLock(row: Record<string, unknown>): StoredLock {
  return {
    name: String(row.name),
    token: (row.token as string | null) ?? null,
    fence: toNumber(row.fence),
    holder: (row.holder as string | null) ?? null,
    acquiredAtUs: toNullableNumber(row.acquired_at),
    expiresAtUs: toNullableNumber(row.expires_at),
    releasedAtUs: toNullableNumber(row.released_at),
    lastOutcome: (row.last_outcome as LockOutcome | null) ?? null,
    lastError: (row.last_error as string | null) ?? null,
    holdUntilUs: toNullableNumber(row.hold_until),
    holdLimitUs: toNullableNumber(row.hold_limit),
    lastTickAtUs: toNullableNumber(row.last_tick_at),
    nowUs: toNumber(row.now),
  };
}
