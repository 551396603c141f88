export { RLockPrometheusMetrics } from './rlock-prometheus-metrics';
export { RLOCK_METRICS_OPTIONS, RLOCK_METRICS_BUCKETS } from './metrics.constants';
export type { RLockMetricsOptions } from './rlock-metrics-options.interface';
