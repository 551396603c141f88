/** Injection token of the options given to `RLockModule.forRoot()` / `forRootAsync()`. */
export const RLOCK_MODULE_OPTIONS = Symbol('RLOCK_MODULE_OPTIONS');

/** Injection token of the SQL dialect the module talks to its database through. */
export const RLOCK_DIALECT = Symbol('RLOCK_DIALECT');

/** Default name of the lock table. */
export const DEFAULT_TABLE_NAME = 'rlock';

/** Defaults applied when an option is not given. */
export const RLOCK_DEFAULTS = {
  acquireTimeoutMs: 30_000,
  ttlMs: 30_000,
  backoffMinMs: 5,
  backoffMaxMs: 200,
  waitConnections: 2,
  maxErrorBytes: 8_192,
  includeStack: false,
  shutdownGraceMs: 5_000,
} as const;

/** Limits that every argument is checked against before any database call. */
export const RLOCK_LIMITS = {
  /** Longest lock name, in Unicode code points. */
  maxNameLength: 255,
  /** Longest holder label, in Unicode code points. */
  maxHolderLength: 255,
  /** Longest time a call may wait or a lease may last (the largest Node.js timer). */
  maxDurationMs: 2_147_483_647,
  /** Shortest lease: renewal runs every third of it. */
  minTtlMs: 100,
  /** Most connections waiting may open beyond the TypeORM pool. */
  maxWaitConnections: 2,
  /** Bounds of the stored error size (the column is TEXT on MySQL: 65,535 bytes). */
  minErrorBytes: 256,
  maxErrorBytes: 60_000,
} as const;

/** Backoff of a failed release tried again while its lease lasts (doubling from min to max). */
export const RELEASE_RETRY = { minMs: 100, maxMs: 2_000 } as const;
