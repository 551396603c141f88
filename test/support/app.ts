import { Test, type TestingModule } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { RLockModule, RLockService, type RLockModuleOptions } from '../../lib';
import type { TestDatabase } from './databases';

/** A running Nest application context with the lock module on a test database. */
export interface TestApp {
  module: TestingModule;
  service: RLockService;
  dataSource: DataSource;
  close(): Promise<void>;
}

/** Starts a Nest context with TypeORM (synchronize unless told not to) and RLockModule on `db`. */
export async function createTestApp(
  db: TestDatabase,
  options: RLockModuleOptions,
  extra: { imports?: any[]; providers?: any[]; controllers?: any[] } = {},
  synchronize = true,
): Promise<TestApp> {
  const module = await Test.createTestingModule({
    imports: [
      TypeOrmModule.forRoot({ ...db.options(), synchronize, autoLoadEntities: true }),
      // Locks a test leaves held would hold app.close() for the default grace (5 s), past
      // jest's hook timeout: tests of the grace set their own.
      RLockModule.forRoot({ shutdownGraceMs: 500, ...options }),
      ...(extra.imports ?? []),
    ],
    providers: extra.providers ?? [],
    controllers: extra.controllers ?? [],
  }).compile();
  try {
    await module.init();
  } catch (error) {
    // A failed start must not leave the data source's connections open.
    await module.close().catch(() => undefined);
    throw error;
  }
  return {
    module,
    service: module.get(RLockService),
    dataSource: module.get(DataSource),
    close: () => module.close(),
  };
}
