// One bench worker process. Reads its role from argv[2] (JSON), sets up, prints READY,
// waits for `GO {times}` on stdin (process.hrtime.bigint() instants, one clock for every
// process on Linux; see support/processes.js), runs its role, prints `RESULT <json>` and exits.
const { startApp, poolConnections, rlock } = require('./support/app');
const { countQueries } = require('./support/query-counter');
const { nativeSession, simplestLockTable } = require('./support/native-lock');
const { ownStatements } = require('./support/own-statements');
const { quantile } = require('./support/stats');

const config = JSON.parse(process.argv[2]);
const counter = countQueries(config.kind);
const now = () => process.hrtime.bigint();

function waitForGo() {
  return new Promise((resolve) => {
    let buffer = '';
    process.stdin.on('data', (chunk) => {
      buffer += chunk;
      const line = buffer.split('\n').find((l) => l.startsWith('GO '));
      if (line) {
        const times = JSON.parse(line.slice(3));
        resolve(Object.fromEntries(Object.entries(times).map(([k, v]) => [k, BigInt(v)])));
      }
    });
  });
}

/** Runs `fn` at hrtime `ns` (never keeps the process alive). */
function at(ns, fn) {
  setTimeout(fn, Math.max(0, Number(ns - now()) / 1e6)).unref();
}

function sleepUntil(ns) {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, Number(ns - now()) / 1e6)));
}

/** Statements this process sends between two instants. */
function sentBetween(from, until) {
  const marks = {};
  at(from, () => (marks.from = counter.sent));
  at(until, () => (marks.until = counter.sent));
  return () => (marks.until ?? counter.sent) - (marks.from ?? 0);
}

const roles = {
  /**
   * Uncontended lock + unlock of the library; of the statements one library cycle sends
   * (recorded at the driver) replayed raw; of the simplest lock table (one conditional
   * upsert, one UPDATE, one connection); of the native lock. In alternating 200 ms slices,
   * so that a changing machine load weighs on all of them alike.
   */
  async compare({ service, dataSource }, go) {
    const name = `${config.name}:${process.pid}`;
    const steps = { rlock: async () => (await service.lock(name, 10_000)).unlock() };
    for (let i = 0; i < 50; i++) await steps.rlock(); // steady state: the row exists
    const own = await ownStatements(config.kind, dataSource, steps.rlock, () => counter.sent);
    steps.own = own.step;
    const simplest = await simplestLockTable(config.kind, dataSource, config.table);
    let n = 0;
    steps.simplest = async () => {
      const token = `${process.pid}-${n++}`;
      if (!(await simplest.acquire(`${name}:s`, token))) throw new Error('simplest: not taken');
      if (!(await simplest.release(`${name}:s`, token))) throw new Error('simplest: not freed');
    };
    const session = config.kind === 'sqlite' ? null : await nativeSession(config.kind, dataSource);
    if (session) {
      steps.native = async () => {
        await session.lock(2_000_000 + process.pid);
        await session.unlock(2_000_000 + process.pid);
      };
    }
    for (const step of Object.values(steps)) for (let i = 0; i < 50; i++) await step();
    ready();
    go = await go;
    const cycles = Object.fromEntries(Object.keys(steps).map((k) => [k, 0]));
    const time = Object.fromEntries(Object.keys(steps).map((k) => [k, 0]));
    await sleepUntil(go.from);
    while (now() < go.until) {
      for (const [variant, step] of Object.entries(steps)) {
        const start = now();
        const sliceEnd = start + 200_000_000n;
        while (now() < sliceEnd) {
          await step();
          cycles[variant]++;
        }
        time[variant] += Number(now() - start) / 1e9;
      }
    }
    simplest.close();
    session?.close();
    const perSecond = Object.fromEntries(Object.keys(steps).map((k) => [k, cycles[k] / time[k]]));
    return { perSecond, own: { statements: own.statements, unrecorded: own.unrecorded } };
  },

  /**
   * Contended loops on `config.names` names: lock, the critical section (`work`: 'write',
   * one durable autocommit write, the name's counter row + 1; 'none'), unlock. `loops`:
   * 'random', one loop that picks a name at random each cycle; 'each', one loop per name.
   * Variants: 'rlock'; 'native' (pg_advisory_lock / GET_LOCK / BEGIN IMMEDIATE on one
   * connection); 'xact' (PostgreSQL behind a transaction pooler: pg_advisory_xact_lock in a
   * transaction). A `holder` takes every name before READY and keeps them through the hold
   * phase, while the others already wait; then it releases them and loops too.
   */
  async contend({ service, dataSource }, go) {
    const count = config.names ?? 1;
    const names = Array.from({ length: count }, (_, i) => `${config.name}:${i}`);
    const table = config.counterTable;
    let lock;
    let unlock;
    let work = async () => undefined;
    let close = () => undefined;
    if (config.variant === 'rlock') {
      lock = (i) => service.lock(names[i], 600_000);
      unlock = (held) => held.unlock();
      const sql = `UPDATE ${table} SET value = value + 1 WHERE id = ${config.kind === 'postgres' ? '$1' : '?'}`;
      if (config.work === 'write') work = (i) => dataSource.query(sql, [i + 1]);
    } else {
      const session = await nativeSession(config.kind, dataSource, {
        xact: config.variant === 'xact',
      });
      close = () => session.close();
      lock = async (i) => (await session.lock(config.nativeBase + i), i);
      unlock = (i) => session.unlock(config.nativeBase + i);
      if (config.work === 'write') work = (i) => session.bump(table, i + 1);
    }
    let held = [];
    if (config.holder) {
      held = await Promise.all(names.map((n) => service.lock(n, 60_000, { ttlMs: 600_000 })));
    }
    ready();
    go = await go;
    const t = (ns) => Number(ns - go.origin);
    const sentHold = sentBetween(go.holdSample, go.holdUntil);
    const sentWindow = sentBetween(go.from, go.until);
    const pool = {};
    at(go.holdMid, () => (pool.hold = poolConnections(config.kind, dataSource)));
    at(go.windowMid, () => (pool.window = poolConnections(config.kind, dataSource)));
    const events = [];
    const holdReleases = [];
    let total = 0;
    const loop = async (pick) => {
      for (;;) {
        const i = pick();
        const handle = await lock(i);
        const acquired = now();
        await work(i);
        total++;
        const releasing = now();
        await unlock(handle);
        events.push(t(acquired), t(releasing), i);
        if (now() >= go.until) break;
      }
    };
    if (config.holder) {
      await sleepUntil(go.holdUntil);
      await Promise.all(
        held.map((h, i) => {
          holdReleases.push([i, t(now())]);
          return h.unlock();
        }),
      );
    }
    const loops =
      config.loops === 'each'
        ? names.map((_, i) => loop(() => i))
        : [loop(() => Math.floor(Math.random() * count))];
    await Promise.all(loops);
    close();
    return {
      events,
      holdReleases,
      total,
      sentHold: sentHold(),
      sentWindow: sentWindow(),
      pool,
      holder: Boolean(config.holder),
    };
  },

  /** lock() + unlock() of a name never used before, in a loop: latency of lock(). */
  async fresh({ service }, go) {
    let n = 0;
    const cycle = async () => {
      const start = now();
      const held = await service.lock(`${config.name}:${process.pid}:${n++}`, 10_000);
      const took = Number(now() - start) / 1e6;
      await held.unlock();
      return took;
    };
    for (let i = 0; i < 50; i++) await cycle();
    ready();
    go = await go;
    await sleepUntil(go.from);
    const sent = sentBetween(go.from, go.until);
    const latencies = [];
    while (now() < go.until) latencies.push(await cycle());
    latencies.sort((a, b) => a - b);
    return {
      p50: quantile(latencies, 0.5),
      p99: quantile(latencies, 0.99),
      cycles: latencies.length,
      sent: sent(),
    };
  },

  /** Takes the lock and holds it until the end of the run. */
  async hold({ service }, go) {
    const held = await service.lock(config.name, 10_000, { ttlMs: 600_000 });
    ready();
    go = await go;
    await sleepUntil(go.until);
    await held.unlock();
    return {};
  },

  /** `waiters` concurrent lock() calls on a held name; counts the statements sent while they wait. */
  async storm({ service }, go) {
    ready();
    go = await go;
    const sent = sentBetween(go.from, go.until);
    let acquired = 0;
    for (let i = 0; i < config.waiters; i++) {
      service.lock(config.name, 600_000).then(
        (held) => {
          acquired++;
          return held.unlock();
        },
        () => undefined,
      );
    }
    await sleepUntil(go.until);
    return { sent: sent(), acquired, exit: true };
  },

  /** Uncontended calls through `@WithRemoteLock` and direct `withLock()` calls, in alternating 200 ms slices. */
  async decorator({ service, app }, go) {
    const target = app.get(DecoratedTarget);
    const name = `${config.name}:${process.pid}:direct`;
    const calls = {
      decorator: () => target.run(),
      withLock: () => service.withLock(name, 10_000, async () => 1),
    };
    for (const call of Object.values(calls)) for (let i = 0; i < 50; i++) await call();
    ready();
    go = await go;
    const cycles = { decorator: 0, withLock: 0 };
    const time = { decorator: 0, withLock: 0 };
    await sleepUntil(go.from);
    while (now() < go.until) {
      for (const [variant, call] of Object.entries(calls)) {
        const start = now();
        const sliceEnd = start + 200_000_000n;
        while (now() < sliceEnd) {
          await call();
          cycles[variant]++;
        }
        time[variant] += Number(now() - start) / 1e9;
      }
    }
    return {
      decorator: cycles.decorator / time.decorator,
      withLock: cycles.withLock / time.withLock,
    };
  },

  /** Heap after 1,000 and after `cycles` lock + unlock cycles; handles left after shutdown. */
  async heap({ service, app }) {
    const name = `${config.name}:${process.pid}`;
    const heap = () => {
      global.gc();
      global.gc();
      return process.memoryUsage().heapUsed;
    };
    ready();
    const marks = {};
    for (let i = 1; i <= config.cycles; i++) {
      await (await service.lock(name, 10_000)).unlock();
      if (i === 1000) marks.after1k = heap();
    }
    marks.afterAll = heap();
    await app.close();
    await new Promise((resolve) => setTimeout(resolve, 100));
    // Handles the library left open: what is active now beyond what the process had before the app.
    const handles = [...process.getActiveResourcesInfo()];
    for (const before of handlesBeforeApp) {
      const index = handles.indexOf(before);
      if (index !== -1) handles.splice(index, 1);
    }
    return { ...marks, handles, closed: true };
  },
};

let DecoratedTarget;
function decoratedProviders() {
  if (config.role !== 'decorator') return [];
  const { Injectable } = require('@nestjs/common');
  const name = `${config.name}:${process.pid}`;
  class Target {
    async run() {
      return 1;
    }
  }
  const descriptor = Object.getOwnPropertyDescriptor(Target.prototype, 'run');
  const decorated = rlock.WithRemoteLock(name, 10_000)(Target.prototype, 'run', descriptor);
  Object.defineProperty(Target.prototype, 'run', decorated ?? descriptor);
  Injectable()(Target);
  DecoratedTarget = Target;
  return [Target];
}

function ready() {
  process.stdout.write('READY\n');
}

let handlesBeforeApp = [];

(async () => {
  const go = waitForGo();
  process.stdout.write('STARTING\n');
  handlesBeforeApp = process.getActiveResourcesInfo();
  const context = await startApp({ ...config, providers: decoratedProviders() });
  const result = await roles[config.role](context, go);
  if (!result.closed && !result.exit) await context.app.close();
  // Pipes are asynchronous: exit only once the whole result line is written.
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`, () => process.exit(0));
})().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error) + '\n');
  process.exit(1);
});
