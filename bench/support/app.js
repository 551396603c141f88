// Starts a Nest application context with TypeORM and RLockModule from the built package
// (dist/) inside a bench worker. Plain CommonJS: run with `node`.
require('reflect-metadata');
const { Module } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const { TypeOrmModule } = require('@nestjs/typeorm');
const { DataSource } = require('typeorm');
const rlock = require(process.env.RLOCK_BENCH_DIST ?? '../../dist');

/** TypeORM options for a database kind and URL. */
function typeormOptions(kind, url) {
  if (kind === 'sqlite') return { type: 'better-sqlite3', database: url };
  if (kind === 'postgres') return { type: 'postgres', url, poolSize: 10 };
  return { type: 'mariadb', url, connectionLimit: 10 };
}

/** Creates the app; resolves { app, service, dataSource }. */
async function startApp({ kind, url, table, synchronize = false, providers = [] }) {
  class BenchAppModule {}
  Module({
    imports: [
      TypeOrmModule.forRoot({ ...typeormOptions(kind, url), synchronize, autoLoadEntities: true }),
      rlock.RLockModule.forRoot({ tableName: table, acquireTimeoutMs: 600_000 }),
    ],
    providers,
  })(BenchAppModule);
  const app = await NestFactory.createApplicationContext(BenchAppModule, { logger: false });
  return { app, service: app.get(rlock.RLockService), dataSource: app.get(DataSource) };
}

module.exports = { startApp, typeormOptions, rlock };
