/** Injection token of the options of `RLockPrometheusMetrics` (optional). */
export const RLOCK_METRICS_OPTIONS = Symbol('RLOCK_METRICS_OPTIONS');

/** Default bucket bounds, in seconds. */
export const RLOCK_METRICS_BUCKETS = {
  wait: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60],
  hold: [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600],
} as const;
