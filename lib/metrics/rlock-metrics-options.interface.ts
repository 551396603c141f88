import type { Registry } from 'prom-client';

/**
 * Options of {@link RLockPrometheusMetrics}.
 * @publicApi
 */
export interface RLockMetricsOptions {
  /** The registry to register the metrics in. Default: prom-client's global `register`. */
  registry?: Registry;
  /** Prefix of every metric name. Default: `rlock_`. */
  prefix?: string;
  /**
   * Maps a lock name to the value of a `lock` label (for example `resource:42` → `resource`).
   * Without it the metrics have no `lock` label: lock names may be unbounded.
   */
  lockLabel?: (name: string) => string;
  /** Buckets of `rlock_wait_seconds`. Default: 1 ms to 60 s. */
  waitBuckets?: number[];
  /** Buckets of `rlock_hold_seconds`. Default: 10 ms to 1 h. */
  holdBuckets?: number[];
}
