// One replica of an app with a cluster-wide @Cron job that must run once per tick
// (@WithRemoteLock with onLocked: 'skip', with or without oncePer), for the decorator's
// "once per tick" multi-process test. Plain CommonJS using dist/.
// Argument: JSON { kind, url, tableName, runsTable, lockName, jobMs, delayMs, periodMs, lockOptions }.
// - delayMs: this replica's timer is late by this much (a wait inside the tick, before the
//   locked call), as a busy event loop or a GC pause would make it;
// - a skewed wall clock comes from preloading test/reliability/workers/fake-clock.js.
// The cron job is created stopped; prints "ready" once started. IPC messages: "start"
// starts the job; "stop" stops it, waits for the ticks on their way, closes the app,
// prints "stats {json}" and exits with 0.
// Each run inserts a row (pid, tick_ms, acquired_ms, last_tick_ms) into runsTable: the
// tick (period start) it belongs to is floor(grant time / period) * period on the database
// clock, read from the lock's state while held (inspect()), and last_tick_ms is the period
// start oncePer recorded (null without oncePer).
require('reflect-metadata');
const { Injectable, Module } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const { TypeOrmModule } = require('@nestjs/typeorm');
const { Cron, ScheduleModule, SchedulerRegistry } = require('@nestjs/schedule');
const { DataSource } = require('typeorm');
const { RLockModule, RLockService, WithRemoteLock } = require('../../dist');
const { typeormOptions } = require('./child-app');

const config = JSON.parse(process.argv[2]);
const stats = { pid: process.pid, ticks: 0, runs: 0, skipped: 0, failures: [] };
const inFlight = new Set();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

class TickJob {
  constructor(dataSource, rlock) {
    this.dataSource = dataSource;
    this.rlock = rlock;
  }

  async run() {
    const state = await this.rlock.inspect(config.lockName);
    const acquiredMs = state.acquiredAt.getTime();
    const tickMs = Math.floor(acquiredMs / config.periodMs) * config.periodMs;
    const lastTickMs = state.lastTickAt === null ? null : state.lastTickAt.getTime();
    await sleep(config.jobMs);
    const params = config.kind === 'postgres' ? '$1, $2, $3, $4' : '?, ?, ?, ?';
    await this.dataSource.query(
      `INSERT INTO ${config.runsTable} (pid, tick_ms, acquired_ms, last_tick_ms) VALUES (${params})`,
      [process.pid, tickMs, acquiredMs, lastTickMs],
    );
    return 'ran';
  }
}

/** Counts every tick the scheduler fires (late by delayMs), and whether the locked method ran. */
function countTicks(_target, _key, descriptor) {
  const locked = descriptor.value;
  descriptor.value = function run(...args) {
    stats.ticks++;
    const tick = (async () => {
      try {
        if (config.delayMs > 0) await sleep(config.delayMs);
        const result = await locked.apply(this, args);
        if (result === 'ran') stats.runs++;
        else stats.skipped++;
      } catch (error) {
        stats.failures.push(String(error));
      }
    })();
    inFlight.add(tick);
    return tick.finally(() => inFlight.delete(tick));
  };
  return descriptor;
}

Injectable()(TickJob);
Reflect.defineMetadata('design:paramtypes', [DataSource, RLockService], TickJob);
// Same as writing, top to bottom:
// @Cron(every second, stopped) @countTicks @WithRemoteLock(name, lockOptions)
const descriptor = Reflect.decorate(
  [
    Cron('* * * * * *', { name: 'tick', disabled: true }),
    countTicks,
    WithRemoteLock(config.lockName, config.lockOptions),
  ],
  TickJob.prototype,
  'run',
  Object.getOwnPropertyDescriptor(TickJob.prototype, 'run'),
);
Object.defineProperty(TickJob.prototype, 'run', descriptor);

class WorkerModule {}
Module({
  imports: [
    TypeOrmModule.forRoot({ ...typeormOptions(config.kind, config.url), autoLoadEntities: true }),
    RLockModule.forRoot({ tableName: config.tableName }),
    ScheduleModule.forRoot(),
  ],
  providers: [TickJob],
})(WorkerModule);

(async () => {
  const app = await NestFactory.createApplicationContext(WorkerModule, { logger: ['error'] });
  await app.init();
  const job = app.get(SchedulerRegistry).getCronJob('tick');
  process.on('message', async (message) => {
    if (message === 'start') {
      job.start();
      return;
    }
    if (message !== 'stop') return;
    // Stop ticking, let the ticks already started finish, then shut down.
    await job.stop();
    await Promise.all(inFlight);
    await app.close();
    process.stdout.write(`stats ${JSON.stringify(stats)}\n`, () => process.exit(0));
  });
  process.stdout.write('ready\n');
})().catch((error) => {
  process.stderr.write(`${error?.stack ?? error}\n`);
  process.exit(1);
});
