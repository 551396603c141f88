// Starts a Nest application context with TypeORM and RLockModule from the built package
// (dist/), for tests that need real OS processes. Plain CommonJS: run with `node`.
require('reflect-metadata');
const { Module } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const { TypeOrmModule } = require('@nestjs/typeorm');
const { DataSource } = require('typeorm');
const { RLockModule, RLockService } = require('../../dist');

/** TypeORM options for a database kind and URL (see databases.ts). */
function typeormOptions(kind, url) {
  if (kind === 'sqlite') return { type: 'better-sqlite3', database: url };
  if (kind === 'postgres') return { type: 'postgres', url };
  return { type: 'mariadb', url };
}

/** Creates the app; resolves { app, service, dataSource }. */
async function startChildApp({ kind, url, rlock = {}, imports = [], providers = [] }) {
  class ChildAppModule {}
  Module({
    imports: [
      TypeOrmModule.forRoot({ ...typeormOptions(kind, url), synchronize: true, autoLoadEntities: true }),
      RLockModule.forRoot(rlock),
      ...imports,
    ],
    providers,
  })(ChildAppModule);
  const app = await NestFactory.createApplicationContext(ChildAppModule, { logger: false });
  return { app, service: app.get(RLockService), dataSource: app.get(DataSource) };
}

module.exports = { startChildApp, typeormOptions };
