import { Inject, Injectable, Optional, type OnModuleDestroy } from '@nestjs/common';
import type { Counter, Histogram, Registry } from 'prom-client';
import type { Subscription } from 'rxjs';
import type { RLockEvent } from '../events/rlock-event.interface';
import { RLockService } from '../rlock.service';
import { loadPromClient } from './load-prom-client';
import { RLOCK_METRICS_BUCKETS, RLOCK_METRICS_OPTIONS } from './metrics.constants';
import type { RLockMetricsOptions } from './rlock-metrics-options.interface';

/**
 * Prometheus metrics of this process's lock traffic, fed by `RLockService.events$`
 * through prom-client (an optional peer dependency, loaded only here). Add it to a
 * module's providers (options through `RLOCK_METRICS_OPTIONS`), or create it with `new`.
 *
 * Metrics (prefix `rlock_`): `acquire_attempts_total`, `acquisitions_total`,
 * `acquire_timeouts_total`, `expired_takeovers_total`, `releases_total{outcome}`,
 * `release_failures_total`, `renewals_total`, `renewal_failures_total`, `losses_total`,
 * `force_releases_total`, `held` (gauge), `wait_seconds{outcome}` and
 * `hold_seconds{outcome}` (histograms).
 * @publicApi
 */
@Injectable()
export class RLockPrometheusMetrics implements OnModuleDestroy {
  private readonly subscription: Subscription;
  private readonly heldLocks = new Set<string>();
  private readonly lockLabel: ((name: string) => string) | undefined;
  private readonly counters: Record<
    | 'attempts'
    | 'acquisitions'
    | 'timeouts'
    | 'takeovers'
    | 'releases'
    | 'releaseFailures'
    | 'renewals'
    | 'renewalFailures'
    | 'losses'
    | 'forceReleases',
    Counter<string>
  >;
  private readonly wait: Histogram<string>;
  private readonly hold: Histogram<string>;

  constructor(
    service: RLockService,
    @Optional() @Inject(RLOCK_METRICS_OPTIONS) options: RLockMetricsOptions = {},
  ) {
    const prom = loadPromClient();
    const registry: Registry = options.registry ?? prom.register;
    const prefix = options.prefix ?? 'rlock_';
    this.lockLabel = options.lockLabel;
    const lock = this.lockLabel ? ['lock'] : [];
    const heldLocks = this.heldLocks;
    /** Registers a metric, or reuses the one of that name a previous instance registered. */
    const metric = <T>(name: string, create: (config: any) => T, config: object): T =>
      (registry.getSingleMetric(prefix + name) as T | undefined) ??
      create({ name: prefix + name, registers: [registry], ...config });
    const counter = (name: string, help: string, labels: string[] = []) =>
      metric(name, (c) => new prom.Counter(c), { help, labelNames: [...lock, ...labels] });
    this.counters = {
      attempts: counter('acquire_attempts_total', 'Acquisition attempts sent to the database.'),
      acquisitions: counter('acquisitions_total', 'Locks granted to this process.'),
      timeouts: counter('acquire_timeouts_total', 'Waits that ended in AcquireTimeoutError.'),
      takeovers: counter(
        'expired_takeovers_total',
        'Grants that took over a lease its holder let expire.',
      ),
      releases: counter('releases_total', 'Locks released by this process.', ['outcome']),
      releaseFailures: counter(
        'release_failures_total',
        'Releases that failed on a database error.',
      ),
      renewals: counter('renewals_total', 'Lease renewals.'),
      renewalFailures: counter(
        'renewal_failures_total',
        'Lease renewals that failed on a database error.',
      ),
      losses: counter('losses_total', 'Locks lost while held (lease expired or taken over).'),
      forceReleases: counter('force_releases_total', 'Locks force-released by this process.'),
    };
    this.wait = metric('wait_seconds', (c) => new prom.Histogram(c), {
      help: 'Time from asking for a lock to getting it (outcome="acquired") or giving up (outcome="timed_out").',
      labelNames: [...lock, 'outcome'],
      buckets: options.waitBuckets ?? [...RLOCK_METRICS_BUCKETS.wait],
    });
    this.hold = metric('hold_seconds', (c) => new prom.Histogram(c), {
      help: 'Time a lock was held, by how the holding ended (released, error, lost).',
      labelNames: [...lock, 'outcome'],
      buckets: options.holdBuckets ?? [...RLOCK_METRICS_BUCKETS.hold],
    });
    metric('held', (c) => new prom.Gauge(c), {
      help: 'Locks held by this process now.',
      collect(this: { set(value: number): void }) {
        this.set(heldLocks.size);
      },
    });
    this.subscription = service.events$.subscribe((event) => this.record(event));
  }

  /** Stops recording (the metrics stay registered). */
  close(): void {
    this.subscription.unsubscribe();
  }

  /** Stops recording when the application shuts down. */
  onModuleDestroy(): void {
    this.close();
  }

  /** Turns one event into metric updates. Override to record more. */
  protected record(event: RLockEvent): void {
    const labels: Record<string, string> = this.lockLabel
      ? { lock: this.lockLabel(event.name) }
      : {};
    const c = this.counters;
    switch (event.type) {
      case 'attempt':
        return c.attempts.inc(labels);
      case 'acquired':
        this.heldLocks.add(heldKey(event.name, event.fence));
        c.acquisitions.inc(labels);
        return this.wait.observe({ ...labels, outcome: 'acquired' }, event.waitMs / 1000);
      case 'timed-out':
        c.timeouts.inc(labels);
        return this.wait.observe({ ...labels, outcome: 'timed_out' }, event.waitMs / 1000);
      case 'expired-takeover':
        return c.takeovers.inc(labels);
      case 'renewed':
        return c.renewals.inc(labels);
      case 'renewal-failed':
        return c.renewalFailures.inc(labels);
      case 'released':
        this.heldLocks.delete(heldKey(event.name, event.fence));
        c.releases.inc({ ...labels, outcome: event.outcome });
        return this.hold.observe({ ...labels, outcome: event.outcome }, event.holdMs / 1000);
      case 'release-failed':
        this.heldLocks.delete(heldKey(event.name, event.fence));
        return c.releaseFailures.inc(labels);
      case 'lost':
        this.heldLocks.delete(heldKey(event.name, event.fence));
        c.losses.inc(labels);
        return this.hold.observe({ ...labels, outcome: 'lost' }, event.holdMs / 1000);
      case 'force-released':
        if (event.released) c.forceReleases.inc(labels);
        return;
    }
  }
}

function heldKey(name: string, fence: number): string {
  return `${fence}\u0000${name}`;
}
