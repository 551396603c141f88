import { Module, type DynamicModule, type Provider } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { getDataSourceToken, TypeOrmModule } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { createDialect } from './dialects/create-dialect';
import { createRLockEntities } from './entities/rlock.entity';
import type {
  RLockModuleAsyncOptions,
  RLockModuleOptions,
} from './interfaces/rlock-module-options.interface';
import { DisabledDialect } from './internal/disabled-dialect';
import { resolveOptions, type ResolvedRLockOptions } from './internal/resolve-options';
import { RLockExplorer } from './internal/rlock-explorer';
import { assertTableName } from './internal/validate';
import { RLOCK_DIALECT, RLOCK_MODULE_OPTIONS, DEFAULT_TABLE_NAME } from './rlock.constants';
import { RLockService } from './rlock.service';

/**
 * Registers the lock table's entity on a TypeORM data source and provides
 * {@link RLockService}. Global by default.
 * @publicApi
 */
@Module({})
export class RLockModule {
  /** Configures the module with static options. */
  static forRoot(options: RLockModuleOptions = {}): DynamicModule {
    const resolved = resolveOptions(options);
    if (resolved.disabled) {
      // Unit tests: decorated methods run directly, and no data source is needed.
      return {
        module: RLockModule,
        global: options.isGlobal ?? true,
        imports: [DiscoveryModule],
        providers: [
          { provide: RLOCK_MODULE_OPTIONS, useValue: resolved },
          { provide: RLOCK_DIALECT, useValue: new DisabledDialect() },
          RLockService,
          RLockExplorer,
        ],
        exports: [RLockService],
      };
    }
    return RLockModule.create(options.dataSource, resolved.tableName, options.isGlobal, [], {
      provide: RLOCK_MODULE_OPTIONS,
      useValue: resolved,
    });
  }

  /**
   * Configures the module with options from a factory (for example from ConfigService).
   * `dataSource`, `tableName` and `isGlobal` decide injection tokens and entities, so they
   * are given here, not returned by the factory.
   */
  static forRootAsync(options: RLockModuleAsyncOptions): DynamicModule {
    const tableName = options.tableName ?? DEFAULT_TABLE_NAME;
    assertTableName(tableName);
    return RLockModule.create(
      options.dataSource,
      tableName,
      options.isGlobal,
      options.imports ?? [],
      {
        provide: RLOCK_MODULE_OPTIONS,
        inject: options.inject ?? [],
        useFactory: async (...args: unknown[]): Promise<ResolvedRLockOptions> =>
          resolveOptions({
            ...(await options.useFactory(...args)),
            dataSource: options.dataSource,
            tableName,
          }),
      },
    );
  }

  private static create(
    dataSource: string | undefined,
    tableName: string,
    isGlobal: boolean | undefined,
    imports: NonNullable<RLockModuleAsyncOptions['imports']>,
    optionsProvider: Provider,
  ): DynamicModule {
    const dialectProvider: Provider = {
      provide: RLOCK_DIALECT,
      inject: [getDataSourceToken(dataSource)],
      useFactory: (source: DataSource) => createDialect(source, tableName),
    };
    return {
      module: RLockModule,
      global: isGlobal ?? true,
      imports: [
        ...imports,
        TypeOrmModule.forFeature(createRLockEntities(tableName), dataSource),
        DiscoveryModule,
      ],
      providers: [optionsProvider, dialectProvider, RLockService, RLockExplorer],
      exports: [RLockService],
    };
  }
}
