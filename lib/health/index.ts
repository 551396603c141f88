export { RLockHealthIndicator } from './rlock-health-indicator';
export { RLOCK_HEALTH_OPTIONS, RLOCK_HEALTH_DEFAULTS } from './health.constants';
export type { RLockHealthOptions } from './rlock-health-options.interface';
