/** Injection token of the options of `RLockHealthIndicator` (optional). */
export const RLOCK_HEALTH_OPTIONS = Symbol('RLOCK_HEALTH_OPTIONS');

/** Defaults of `RLockHealthIndicator`. */
export const RLOCK_HEALTH_DEFAULTS = {
  timeoutMs: 5_000,
} as const;
