import { Registry } from 'prom-client';
import { AcquireTimeoutError, LockLostError } from '../../lib';
import { RLockPrometheusMetrics, RLOCK_METRICS_OPTIONS } from '../../lib/metrics';
import { createTestApp, type TestApp } from '../support/app';
import { testDatabases, uniqueTableName } from '../support/databases';

/** The value of one series of a metric (a histogram's `_count` with `suffix`). */
async function value(
  registry: Registry,
  name: string,
  labels: Record<string, string> = {},
  suffix = '',
): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (metric === undefined) throw new Error(`no metric ${name}`);
  const { values } = await metric.get();
  const series = (
    values as { value: number; labels: Record<string, unknown>; metricName?: string }[]
  ).filter(
    (v) =>
      (suffix === '' || v.metricName === name + suffix) &&
      Object.entries(labels).every(([k, l]) => v.labels[k] === l),
  );
  return series.reduce((sum, v) => sum + v.value, 0);
}

describe.each(testDatabases())('RLockPrometheusMetrics on $label', (db) => {
  const tableName = uniqueTableName('rlock_met');
  let app: TestApp;

  beforeAll(async () => {
    app = await createTestApp(db, { tableName, holder: 'metrics-app' });
  });
  afterAll(() => app.close());

  it('counts a known sequence of lock traffic', async () => {
    const registry = new Registry();
    const metrics = new RLockPrometheusMetrics(app.service, { registry });
    const a = await app.service.lock('m:a', 5_000, { ttlMs: 30_000 }); // attempt 1, grant 1
    expect(await app.service.tryLock('m:a')).toBeNull(); // attempt 2
    await expect(app.service.lock('m:a', 100)).rejects.toBeInstanceOf(AcquireTimeoutError); // timeout 1
    await a.extend(); // renewal 1
    expect(await value(registry, 'rlock_held')).toBe(1);
    await a.unlock(new Error('boom')); // release (error)
    const again = await app.service.lock('m:a', 5_000); // attempt 3, grant 2
    await again.unlock(); // release (released)
    const b = await app.service.lock('m:b', 5_000, { ttlMs: 30_000 }); // attempt 4, grant 3
    await app.service.forceRelease('m:b'); // force release 1
    await expect(b.extend()).rejects.toBeInstanceOf(LockLostError); // loss 1
    metrics.close();
    await app.service.lock('m:c', 5_000).then((lock) => lock.unlock()); // not counted any more

    expect(await value(registry, 'rlock_acquire_attempts_total')).toBe(4);
    expect(await value(registry, 'rlock_acquisitions_total')).toBe(3);
    expect(await value(registry, 'rlock_acquire_timeouts_total')).toBe(1);
    expect(await value(registry, 'rlock_renewals_total')).toBe(1);
    expect(await value(registry, 'rlock_renewal_failures_total')).toBe(0);
    expect(await value(registry, 'rlock_releases_total', { outcome: 'error' })).toBe(1);
    expect(await value(registry, 'rlock_releases_total', { outcome: 'released' })).toBe(1);
    expect(await value(registry, 'rlock_release_failures_total')).toBe(0);
    expect(await value(registry, 'rlock_force_releases_total')).toBe(1);
    expect(await value(registry, 'rlock_losses_total')).toBe(1);
    expect(await value(registry, 'rlock_expired_takeovers_total')).toBe(0);
    expect(await value(registry, 'rlock_held')).toBe(0);
    const wait = (outcome: string) => value(registry, 'rlock_wait_seconds', { outcome }, '_count');
    expect(await wait('acquired')).toBe(3);
    expect(await wait('timed_out')).toBe(1);
    expect(
      await value(registry, 'rlock_wait_seconds', { outcome: 'timed_out' }, '_sum'),
    ).toBeGreaterThanOrEqual(0.09);
    const hold = (outcome: string) => value(registry, 'rlock_hold_seconds', { outcome }, '_count');
    expect(await hold('error')).toBe(1);
    expect(await hold('released')).toBe(1);
    expect(await hold('lost')).toBe(1);
    const text = await registry.metrics();
    expect(text).toContain('# TYPE rlock_acquisitions_total counter');
    expect(text).toContain('# TYPE rlock_wait_seconds histogram');
  });

  it('adds a lock label through lockLabel, with a custom prefix', async () => {
    const registry = new Registry();
    const metrics = new RLockPrometheusMetrics(app.service, {
      registry,
      prefix: 'app_lock_',
      lockLabel: (name) => name.split(':')[0],
    });
    await app.service.lock('resource:1', 5_000).then((lock) => lock.unlock());
    await app.service.lock('resource:2', 5_000).then((lock) => lock.unlock());
    await app.service.lock('job:nightly', 5_000).then((lock) => lock.unlock());
    metrics.close();
    expect(await value(registry, 'app_lock_acquisitions_total', { lock: 'resource' })).toBe(2);
    expect(await value(registry, 'app_lock_acquisitions_total', { lock: 'job' })).toBe(1);
    expect(registry.getSingleMetric('rlock_acquisitions_total')).toBeUndefined();
  });

  it('works as a Nest provider and shares the metrics of one registry', async () => {
    const registry = new Registry();
    const withMetrics = await createTestApp(
      db,
      { tableName, holder: 'metrics-provider' },
      {
        providers: [
          { provide: RLOCK_METRICS_OPTIONS, useValue: { registry } },
          RLockPrometheusMetrics,
        ],
      },
    );
    const second = new RLockPrometheusMetrics(withMetrics.service, { registry });
    await withMetrics.service.lock('m:provider', 5_000).then((lock) => lock.unlock());
    second.close();
    await withMetrics.close();
    // Both instances feed the same series: one grant counted twice.
    expect(await value(registry, 'rlock_acquisitions_total')).toBe(2);
  });
});
