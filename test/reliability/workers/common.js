// Shared helpers of the reliability suite's child processes (plain CommonJS over dist/).
require('reflect-metadata');
const { openSync, writeSync } = require('node:fs');
const { Module } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const { TypeOrmModule } = require('@nestjs/typeorm');
const { DataSource } = require('typeorm');
const { RLockModule, RLockService } = require('../../../dist');

/** TypeORM options for a database kind and URL; the lock table already exists (created by the test). */
function typeormOptions(config) {
  const pool = config.poolSize ?? 3;
  if (config.kind === 'sqlite') return { type: 'better-sqlite3', database: config.url };
  if (config.kind === 'postgres') {
    return {
      type: 'postgres',
      url: config.url,
      poolSize: pool,
      applicationName: config.appName ?? 'rlock-reliability',
      connectTimeoutMS: 3000,
    };
  }
  return { type: 'mariadb', url: config.url, poolSize: pool, connectTimeout: 3000 };
}

/** Starts a Nest application context with TypeORM and RLockModule from dist/. */
async function startApp(config, rlockExtra = {}) {
  class ReliabilityChildModule {}
  Module({
    imports: [
      TypeOrmModule.forRoot({
        ...typeormOptions(config),
        synchronize: false,
        autoLoadEntities: true,
      }),
      RLockModule.forRoot({ tableName: config.table, ...(config.rlock ?? {}), ...rlockExtra }),
    ],
  })(ReliabilityChildModule);
  const app = await NestFactory.createApplicationContext(ReliabilityChildModule, { logger: false });
  return { app, service: app.get(RLockService), dataSource: app.get(DataSource) };
}

/** `?` placeholders, rewritten to `$n` on PostgreSQL. */
function sql(kind, text) {
  let n = 0;
  return kind === 'postgres' ? text.replace(/\?/g, () => `$${++n}`) : text;
}

/** Runs one statement; resolves { affected, records } whatever the driver. */
async function exec(dataSource, kind, text, params = []) {
  const runner = dataSource.createQueryRunner();
  try {
    const result = await runner.query(sql(kind, text), params, true);
    return { affected: result.affected ?? 0, records: result.records ?? [] };
  } finally {
    await runner.release();
  }
}

/** The server-side ids of the pool's connections (PostgreSQL backend pids, MariaDB thread ids). */
function connectionIds(dataSource, kind) {
  const driver = dataSource.driver;
  if (kind === 'postgres') return (driver.master._clients ?? []).map((c) => c.processID);
  if (kind === 'mariadb') return driver.pool._allConnections.toArray().map((c) => c.threadId);
  return [];
}

/** A JSON-safe description of a thrown value. */
function errorInfo(error) {
  if (!(error instanceof Error)) return { class: typeof error, message: String(error) };
  return {
    class: error.constructor.name,
    name: error.name,
    code: error.code,
    message: error.message,
    cause: error.cause instanceof Error ? `${error.cause.name}: ${error.cause.message}` : undefined,
  };
}

/** One clock for every process of the machine (CLOCK_MONOTONIC), in ns as a number. */
function hr() {
  return Number(process.hrtime.bigint());
}

/** Appends history events as JSON lines with synchronous writes: nothing is lost on SIGKILL. */
function eventLog(file) {
  const fd = file ? openSync(file, 'a') : null;
  return (event) => {
    if (fd !== null) writeSync(fd, JSON.stringify({ pid: process.pid, hr: hr(), ...event }) + '\n');
  };
}

/** Describes a lock's `lastError` for the test. */
function lastErrorInfo(lock, classes = {}) {
  const e = lock.lastError;
  if (e === null) return null;
  const info = errorInfo(e);
  for (const [label, cls] of Object.entries(classes)) info[`is${label}`] = e instanceof cls;
  info.fields = Object.fromEntries(Object.entries(e));
  return info;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The database time (ms) of the grant of `lock`: the row's `acquired_at`, read while the
 * lock is held. `expiresAt − ttl` no longer dates a grant: a release that hands the lock
 * to a waiter gives it a short lease (min(ttl, 1.5 s)) until the new holder renews.
 * Null when the row has moved on to a later fence (the lock was lost first) or the read
 * failed three times; the history checker reports such a grant.
 */
async function grantTime(service, lock) {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const state = await service.inspect(lock.name);
      if (state === null || state.fence !== lock.fence || state.acquiredAt === null) return null;
      return state.acquiredAt.getTime();
    } catch {
      await sleep(50);
    }
  }
  return null;
}

/**
 * The fence-checking store of R3 and R15: a table of (k, value, fence) that refuses any
 * read or write carrying a fence smaller than the largest it has seen for that key.
 */
class FencedStore {
  constructor(dataSource, kind, table) {
    this.dataSource = dataSource;
    this.kind = kind;
    this.table = table;
  }

  /** Claims `key` for `fence` and reads its value; null when a newer fence was seen (stale). */
  async read(key, fence) {
    const claimed = await exec(
      this.dataSource,
      this.kind,
      `UPDATE ${this.table} SET fence = ? WHERE k = ? AND fence <= ?`,
      [fence, key, fence],
    );
    if (claimed.affected !== 1) return null;
    const { records } = await exec(
      this.dataSource,
      this.kind,
      `SELECT value FROM ${this.table} WHERE k = ?`,
      [key],
    );
    return { value: records[0].value };
  }

  /** Writes `value` unless a newer fence was seen; resolves whether the write was accepted. */
  async write(key, value, fence) {
    const written = await exec(
      this.dataSource,
      this.kind,
      `UPDATE ${this.table} SET value = ?, fence = ? WHERE k = ? AND fence <= ?`,
      [String(value), fence, key, fence],
    );
    return written.affected === 1;
  }
}

module.exports = {
  startApp,
  sql,
  exec,
  connectionIds,
  errorInfo,
  hr,
  eventLog,
  lastErrorInfo,
  sleep,
  grantTime,
  FencedStore,
};
