import { Injectable, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { RLockModule, RLockService } from '../../lib';
import { testDatabases, uniqueTableName } from '../support/databases';

@Injectable()
class LockSettings {
  readonly ttlMs = 4321;
  readonly holder = 'from-config';
}

@Module({ providers: [LockSettings], exports: [LockSettings] })
class SettingsModule {}

describe.each(testDatabases())('RLockModule on $label', (db) => {
  it('forRootAsync takes options from an injected provider', async () => {
    const tableName = uniqueTableName();
    const module = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot({ ...db.options(), synchronize: true, autoLoadEntities: true }),
        RLockModule.forRootAsync({
          tableName,
          imports: [SettingsModule],
          inject: [LockSettings],
          useFactory: (settings: LockSettings) => ({
            ttlMs: settings.ttlMs,
            holder: settings.holder,
          }),
        }),
      ],
    }).compile();
    await module.init();
    const service = module.get(RLockService);
    const lock = await service.lock('async-configured', 1000);
    const state = await service.inspect('async-configured');
    expect(state?.holder).toBe('from-config');
    const leaseMs = state!.expiresAt!.getTime() - state!.acquiredAt!.getTime();
    expect(leaseMs).toBeGreaterThan(4000);
    expect(leaseMs).toBeLessThan(4400);
    await lock.unlock();
    await module.close();
  });

  it('uses a named data source', async () => {
    const tableName = uniqueTableName();
    const module = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot({
          ...db.options(),
          name: 'locks',
          synchronize: true,
          autoLoadEntities: true,
        } as never),
        RLockModule.forRoot({ dataSource: 'locks', tableName }),
      ],
    }).compile();
    await module.init();
    const service = module.get(RLockService);
    const lock = await service.lock('named-source', 1000);
    expect((await service.list()).map((s) => s.name)).toEqual(['named-source']);
    await lock.unlock();
    await module.close();
  });

  it('rejects bad module options when the module is defined', () => {
    expect(() => RLockModule.forRoot({ ttlMs: -5 })).toThrow(/ttlMs/);
    expect(() => RLockModule.forRootAsync({ tableName: 'x y', useFactory: () => ({}) })).toThrow(
      /tableName/,
    );
  });
});
