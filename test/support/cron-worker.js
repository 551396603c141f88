// One instance of an app with a cluster-wide singleton @Cron job (@WithRemoteLock with
// onLocked: 'skip'), for the decorator's multi-process test. Plain CommonJS using dist/.
// Argument: JSON { kind, url, tableName, runsTable, lockName, jobMs }.
// Prints "ready" once started; on the IPC message "stop" it closes the app, prints
// "stats {json}" and exits with 0.
require('reflect-metadata');
const { Injectable, Module } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const { TypeOrmModule } = require('@nestjs/typeorm');
const { Cron, ScheduleModule, SchedulerRegistry } = require('@nestjs/schedule');
const { DataSource } = require('typeorm');
const { RLockModule, WithRemoteLock } = require('../../dist');
const { typeormOptions } = require('./child-app');

const config = JSON.parse(process.argv[2]);
const stats = { pid: process.pid, ticks: 0, runs: 0, skipped: 0, failures: [] };
const inFlight = new Set();
const nowUs = () => Number(process.hrtime.bigint() / 1000n); // one clock for every process on Linux
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

class SingletonJob {
  constructor(dataSource) {
    this.dataSource = dataSource;
  }

  async run() {
    const startedUs = nowUs();
    await sleep(config.jobMs);
    const endedUs = nowUs();
    const params = config.kind === 'postgres' ? '$1, $2, $3' : '?, ?, ?';
    await this.dataSource.query(
      `INSERT INTO ${config.runsTable} (pid, started_us, ended_us) VALUES (${params})`,
      [process.pid, startedUs, endedUs],
    );
    return 'ran';
  }
}

/** Counts every tick the scheduler fires, and whether the locked method ran or skipped. */
function countTicks(_target, _key, descriptor) {
  const locked = descriptor.value;
  descriptor.value = function run(...args) {
    stats.ticks++;
    const tick = (async () => {
      try {
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

Injectable()(SingletonJob);
Reflect.defineMetadata('design:paramtypes', [DataSource], SingletonJob);
// Same as writing, top to bottom: @Cron(every second) @countTicks @WithRemoteLock(name, skip)
const descriptor = Reflect.decorate(
  [
    Cron('* * * * * *', { name: 'singleton' }),
    countTicks,
    WithRemoteLock(config.lockName, { onLocked: 'skip' }),
  ],
  SingletonJob.prototype,
  'run',
  Object.getOwnPropertyDescriptor(SingletonJob.prototype, 'run'),
);
Object.defineProperty(SingletonJob.prototype, 'run', descriptor);

class WorkerModule {}
Module({
  imports: [
    TypeOrmModule.forRoot({ ...typeormOptions(config.kind, config.url), autoLoadEntities: true }),
    RLockModule.forRoot({ tableName: config.tableName }),
    ScheduleModule.forRoot(),
  ],
  providers: [SingletonJob],
})(WorkerModule);

(async () => {
  const app = await NestFactory.createApplicationContext(WorkerModule, { logger: ['error'] });
  await app.init();
  process.on('message', async (message) => {
    if (message !== 'stop') return;
    // Stop ticking, let the ticks already started finish, then shut down.
    await app.get(SchedulerRegistry).getCronJob('singleton').stop();
    await Promise.all(inFlight);
    await app.close();
    process.stdout.write(`stats ${JSON.stringify(stats)}\n`, () => process.exit(0));
  });
  process.stdout.write('ready\n');
})().catch((error) => {
  process.stderr.write(`${error?.stack ?? error}\n`);
  process.exit(1);
});
