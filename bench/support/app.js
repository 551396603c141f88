// Starts a Nest application context with TypeORM and RLockModule from the built package
// (dist/) inside a bench worker. Plain CommonJS: run with `node`.
require('reflect-metadata');
const { Module } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const { TypeOrmModule } = require('@nestjs/typeorm');
const { DataSource } = require('typeorm');
const rlock = require(process.env.RLOCK_BENCH_DIST ?? '../../dist');

/** TypeORM options for a database kind and URL; `poolSize` caps the pool (default 10). */
function typeormOptions(kind, url, poolSize = 10) {
  if (kind === 'sqlite') return { type: 'better-sqlite3', database: url };
  if (kind === 'postgres') return { type: 'postgres', url, poolSize };
  return { type: 'mariadb', url, poolSize };
}

/**
 * Creates the app; resolves { app, service, dataSource }. The lock table and its waiters
 * table are the module's entities (`createRLockEntities()`, registered by `RLockModule`):
 * `synchronize: true` creates both.
 */
async function startApp({
  kind,
  url,
  table,
  synchronize = false,
  providers = [],
  poolSize,
  waitConnections,
}) {
  class BenchAppModule {}
  Module({
    imports: [
      TypeOrmModule.forRoot({
        ...typeormOptions(kind, url, poolSize),
        synchronize,
        autoLoadEntities: true,
      }),
      rlock.RLockModule.forRoot({
        tableName: table,
        acquireTimeoutMs: 600_000,
        ...(waitConnections === undefined ? {} : { waitConnections }),
      }),
    ],
    providers,
  })(BenchAppModule);
  const app = await NestFactory.createApplicationContext(BenchAppModule, { logger: false });
  return { app, service: app.get(rlock.RLockService), dataSource: app.get(DataSource) };
}

/** How many connections the TypeORM pool of `dataSource` has open now (null: SQLite). */
function poolConnections(kind, dataSource) {
  if (kind === 'postgres') return dataSource.driver.master.totalCount;
  if (kind === 'mariadb') return dataSource.driver.pool._allConnections.length;
  return null;
}

module.exports = { startApp, typeormOptions, poolConnections, rlock };
