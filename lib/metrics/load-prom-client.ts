import { createRequire } from 'node:module';
import { RLockConfigurationError } from '../errors/rlock-configuration.error';
import { MESSAGES } from '../rlock.messages';

/** Loads the optional peer dependency prom-client when the metrics adapter is first used. */
export function loadPromClient(): typeof import('prom-client') {
  try {
    return createRequire(__filename)('prom-client');
  } catch (error) {
    throw new RLockConfigurationError(
      MESSAGES.optionalPeerMissing('prom-client', 'RLockPrometheusMetrics'),
      { cause: error },
    );
  }
}
