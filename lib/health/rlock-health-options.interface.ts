/**
 * Options of `RLockHealthIndicator`, provided under `RLOCK_HEALTH_OPTIONS`.
 * @publicApi
 */
export interface RLockHealthOptions {
  /** How long the database check may take before the indicator reports down, in ms. Default: 5,000. */
  timeoutMs?: number;
}
