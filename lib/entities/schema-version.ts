/**
 * The schema of the lock tables this version of nestjs-rlock needs. 1: the lock table of
 * 0.1 (no waiters table); 2: the waiters table (`<table>_waiters`), the hold columns
 * (`hold_until`, `hold_limit`, `last_tick_at`) and no `wanted_at`.
 */
export const RLOCK_SCHEMA_VERSION = 2;

/**
 * The row of the waiters table that stores the schema version (in `queued_at`): its
 * token, lock and owner are not hex keys, and it never runs out, so no line or purge
 * ever touches it.
 */
export const SCHEMA_ROW = {
  token: 'rlock-schema',
  lockId: 'rlock-schema',
  holder: 'nestjs-rlock schema version',
  ttlMs: '0',
  owner: 'rlock-schema',
  doorbell: null,
  /** Never runs out: the largest value every database and JavaScript number agree on. */
  expiresAt: String(Number.MAX_SAFE_INTEGER),
} as const;
