import { Inject, Injectable, Optional, type OnModuleDestroy } from '@nestjs/common';
import { HealthIndicatorService, type HealthIndicatorResult } from '@nestjs/terminus';
import type { Subscription } from 'rxjs';
import { MESSAGES } from '../rlock.messages';
import { RLockService } from '../rlock.service';
import { RLOCK_HEALTH_DEFAULTS, RLOCK_HEALTH_OPTIONS } from './health.constants';
import type { RLockHealthOptions } from './rlock-health-options.interface';

/**
 * A `@nestjs/terminus` health indicator for the lock system: the database answers, the
 * lock table is there, and the leases this process holds are being renewed. Add it to
 * the providers of the module that imports `TerminusModule`, then
 * `health.check([() => rlock.isHealthy('rlock')])`.
 * @publicApi
 */
@Injectable()
export class RLockHealthIndicator implements OnModuleDestroy {
  /** Held locks (name and fence) whose latest renewal failed. */
  private readonly failingRenewals = new Map<string, string>();
  private readonly subscription: Subscription;
  private readonly timeoutMs: number;

  constructor(
    private readonly rlock: RLockService,
    private readonly healthIndicatorService: HealthIndicatorService,
    @Optional() @Inject(RLOCK_HEALTH_OPTIONS) options: RLockHealthOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? RLOCK_HEALTH_DEFAULTS.timeoutMs;
    this.subscription = rlock.events$.subscribe((event) => {
      const key = `${event.name} (fence ${'fence' in event ? event.fence : '?'})`;
      if (event.type === 'renewal-failed') {
        this.failingRenewals.set(key, describe(event.error));
      } else if (
        event.type === 'renewed' ||
        event.type === 'released' ||
        event.type === 'release-failed' ||
        event.type === 'lost'
      ) {
        this.failingRenewals.delete(key);
      }
    });
  }

  /**
   * Up when the database answers, the lock table exists and no held lock's renewal is
   * failing; down (with the reason in `message`) otherwise.
   */
  async isHealthy<const Key extends string = 'rlock'>(
    key: Key = 'rlock' as Key,
  ): Promise<HealthIndicatorResult<Key>> {
    const indicator = this.healthIndicatorService.check(key);
    const failing = this.failingRenewals.size;
    const renewals = failing === 0 ? 'ok' : 'failing';
    let tablePresent: boolean;
    try {
      tablePresent = await this.withTimeout(this.rlock.probe());
    } catch (error) {
      return indicator.down({
        database: 'unreachable',
        renewals,
        message: MESSAGES.health.unreachable(describe(error)),
      });
    }
    if (!tablePresent) {
      return indicator.down({
        database: 'reachable',
        table: 'missing',
        renewals,
        message: MESSAGES.health.tableMissing,
      });
    }
    if (failing > 0) {
      const [[lock, why]] = this.failingRenewals;
      return indicator.down({
        database: 'reachable',
        table: 'present',
        renewals,
        failingLocks: failing,
        message: MESSAGES.health.renewalsFailing(lock, why),
      });
    }
    return indicator.up({ database: 'reachable', table: 'present', renewals });
  }

  /** Stops watching renewals. */
  onModuleDestroy(): void {
    this.subscription.unsubscribe();
  }

  private withTimeout<T>(promise: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(MESSAGES.health.timeout(this.timeoutMs))),
        this.timeoutMs,
      );
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  }
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
  return `${error.message}${cause}`;
}
