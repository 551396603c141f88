import { ServiceUnavailableException } from '@nestjs/common';
import { HealthCheckService, TerminusModule } from '@nestjs/terminus';
import { filter, firstValueFrom } from 'rxjs';
import type { LockDialect } from '../../lib/dialects/dialect.interface';
import { RLockHealthIndicator, RLOCK_HEALTH_OPTIONS } from '../../lib/health';
import { RLOCK_DIALECT } from '../../lib/rlock.constants';
import { createTestApp, type TestApp } from '../support/app';
import { testDatabases, uniqueTableName } from '../support/databases';

describe.each(testDatabases())('RLockHealthIndicator on $label', (db) => {
  let app: TestApp;
  let indicator: RLockHealthIndicator;
  let tableName: string;

  beforeEach(async () => {
    tableName = uniqueTableName('rlock_health');
    app = await createTestApp(
      db,
      { tableName, holder: 'health-app' },
      {
        imports: [TerminusModule.forRoot({ logger: false })],
        providers: [
          RLockHealthIndicator,
          { provide: RLOCK_HEALTH_OPTIONS, useValue: { timeoutMs: 3_000 } },
        ],
      },
    );
    indicator = app.module.get(RLockHealthIndicator);
  });
  afterEach(() => app.close());

  it('is up when the database answers, the table exists and renewals succeed', async () => {
    const lock = await app.service.lock('health:held', 5_000, { ttlMs: 300 });
    await firstValueFrom(app.service.events$.pipe(filter((e) => e.type === 'renewed')));
    const result = await app.module
      .get(HealthCheckService)
      .check([() => indicator.isHealthy('locks')]);
    await lock.unlock();
    expect(result.status).toBe('ok');
    expect(result.details).toEqual({
      locks: { status: 'up', database: 'reachable', table: 'present', renewals: 'ok' },
    });
  });

  it('is down when the lock table is missing', async () => {
    await app.dataSource.query(`DROP TABLE ${tableName}`);
    expect(await indicator.isHealthy()).toEqual({
      rlock: {
        status: 'down',
        database: 'reachable',
        table: 'missing',
        renewals: 'ok',
        message: 'The lock table is missing.',
      },
    });
    const failure = await app.module
      .get(HealthCheckService)
      .check([() => indicator.isHealthy()])
      .catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ServiceUnavailableException);
    expect((failure as ServiceUnavailableException).getResponse()).toMatchObject({
      status: 'error',
      error: { rlock: { status: 'down', table: 'missing' } },
    });
  });

  it('is down, with renewals failing, when the database stops answering', async () => {
    const lock = await app.service.lock('health:cut', 5_000, { ttlMs: 600 });
    const renewalFailed = firstValueFrom(
      app.service.events$.pipe(filter((e) => e.type === 'renewal-failed')),
    );
    // Cut this application off its database: TypeORM's pool and the lock module's own
    // connection (SQLite) are closed; the shared database servers keep running.
    await app.dataSource.destroy();
    await app.module.get<LockDialect>(RLOCK_DIALECT).close();
    await renewalFailed;
    const result = await indicator.isHealthy();
    expect(result.rlock).toMatchObject({
      status: 'down',
      database: 'unreachable',
      renewals: 'failing',
    });
    expect(result.rlock.message).toMatch(/^The lock database does not answer: /);
    // The lease cannot be renewed any more: the lock is lost when it runs out.
    if (!lock.signal.aborted) {
      await new Promise((resolve) => lock.signal.addEventListener('abort', resolve));
    }
    expect(lock.isHeld).toBe(false);
  });
});
