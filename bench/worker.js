// One bench worker process. Reads its role and app options from argv[2] (JSON), starts the
// app and prints UP. Then, for each `RUN <json>` line on stdin (this run's options), sets
// up, prints READY, waits for `GO {times}` (process.hrtime.bigint() instants, one clock for
// every process on Linux; see support/processes.js), runs its role and prints
// `RESULT <json>`. `EXIT` closes the app and ends the process.
const { startApp, poolConnections, rlock } = require('./support/app');
const { countQueries } = require('./support/query-counter');
const { bumper, nativeSession, simplestLockTable } = require('./support/native-lock');
const { ownStatements } = require('./support/own-statements');
const { quantile } = require('./support/stats');
const { serverPort, connectionsTo } = require('./support/connections');

const startConfig = JSON.parse(process.argv[2]);
/** This run's options: the start options with the run's own over them. */
let config = startConfig;
const counter = countQueries(config.kind);
const now = () => process.hrtime.bigint();

const input = { buffer: '', lines: [], waiting: null };
process.stdin.on('data', (chunk) => {
  input.buffer += chunk;
  const parts = input.buffer.split('\n');
  input.buffer = parts.pop();
  input.lines.push(...parts);
  input.waiting?.();
});
// The bench is gone (it crashed or was stopped): end, rather than keep connections open.
process.stdin.on('end', () => process.exit(1));

/** The next stdin line (resolves when it arrives). */
function nextLine() {
  return new Promise((resolve) => {
    const take = () => {
      if (input.lines.length === 0) return;
      input.waiting = null;
      resolve(input.lines.shift());
    };
    input.waiting = take;
    take();
  });
}

/** Resolves the instants of the next GO line. */
async function waitForGo() {
  for (;;) {
    const line = await nextLine();
    if (line.startsWith('GO ')) {
      const times = JSON.parse(line.slice(3));
      return Object.fromEntries(Object.entries(times).map(([k, v]) => [k, BigInt(v)]));
    }
  }
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
    const nameCount = config.names ?? 1;
    const names = Array.from({ length: nameCount }, (_, i) => `${config.name}:${i}`);
    const table = config.counterTable;
    let lock;
    let unlock;
    let work = async () => undefined;
    let close = () => undefined;
    if (config.variant === 'rlock') {
      lock = (i) => service.lock(names[i], 600_000);
      unlock = (held) => held.unlock();
      const bump = bumper(config.kind, dataSource, table);
      if (config.work === 'write') work = (i) => bump(i + 1);
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
    // This process's connections to the server: the pool's, and all (the library's extra ones).
    const port = serverPort(config.kind, config.url);
    const connections = {};
    const count = () => ({
      pool: poolConnections(config.kind, dataSource),
      all: connectionsTo(port),
    });
    at(go.holdMid, () => (connections.hold = count()));
    at(go.windowMid, () => (connections.window = count()));
    const events = [];
    const holdReleases = [];
    const lost = [];
    let total = 0;
    let expiredOnArrival = 0;
    let longestWait = 0;
    let shortestLease = Infinity;
    const loop = async (pick) => {
      for (;;) {
        const i = pick();
        const asked = now();
        const handle = await lock(i);
        const acquired = now();
        if (asked >= go.holdUntil)
          longestWait = Math.max(longestWait, Number(acquired - asked) / 1e6);
        if (config.variant === 'rlock') {
          // What is left of the lease when lock() returns (database and local clock: one machine).
          const left = handle.expiresAt.getTime() - Date.now();
          if (left <= 0) expiredOnArrival++;
          shortestLease = Math.min(shortestLease, left);
        }
        await work(i);
        total++;
        const releasing = now();
        try {
          await unlock(handle);
        } catch (error) {
          // The library reports a holding that was no longer held (LockLostError): count it.
          if (config.variant !== 'rlock') throw error;
          lost.push(`${error.name}: ${error.message}`);
        }
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
        : [loop(() => Math.floor(Math.random() * nameCount))];
    await Promise.all(loops);
    close();
    return {
      events,
      holdReleases,
      lost: lost.length,
      expiredOnArrival,
      longestWait,
      shortestLease: Number.isFinite(shortestLease) ? shortestLease : null,
      lostExample: lost[0],
      total,
      sentHold: sentHold(),
      sentWindow: sentWindow(),
      connections,
      holder: Boolean(config.holder),
    };
  },

  /**
   * lock() + unlock() of a name never used before, in a loop, on each of `config.tables`
   * (lock tables of different sizes, one app each), in alternating 200 ms slices so that
   * a changing machine load weighs on all alike: latency of lock().
   */
  async fresh({ service }, go) {
    const services = [service];
    const apps = [];
    for (const table of config.tables.slice(1)) {
      const other = await startApp({ ...startConfig, table });
      apps.push(other.app);
      services.push(other.service);
    }
    let n = 0;
    const cycle = async (s) => {
      const start = now();
      const held = await s.lock(`${config.name}:${process.pid}:${n++}`, 10_000);
      const took = Number(now() - start) / 1e6;
      await held.unlock();
      return took;
    };
    for (const s of services) for (let i = 0; i < 50; i++) await cycle(s);
    ready();
    go = await go;
    await sleepUntil(go.from);
    const sent = services.map(() => 0);
    const latencies = services.map(() => []);
    while (now() < go.until) {
      for (let k = 0; k < services.length; k++) {
        const sliceEnd = now() + 200_000_000n;
        const before = counter.sent;
        while (now() < sliceEnd) latencies[k].push(await cycle(services[k]));
        sent[k] += counter.sent - before;
      }
    }
    for (const app of apps) await app.close();
    return latencies.map((l, k) => {
      l.sort((a, b) => a - b);
      return { p50: quantile(l, 0.5), p99: quantile(l, 0.99), cycles: l.length, sent: sent[k] };
    });
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

/** Writes a line; resolves once written (pipes are asynchronous). */
function write(line) {
  return new Promise((resolve) => process.stdout.write(line + '\n', resolve));
}

(async () => {
  process.stdout.write('STARTING\n');
  handlesBeforeApp = process.getActiveResourcesInfo();
  const context = await startApp({
    ...startConfig,
    table: startConfig.tables?.[0] ?? startConfig.table,
    providers: decoratedProviders(),
  });
  await write('UP');
  for (;;) {
    const line = await nextLine();
    if (line === 'EXIT') break;
    if (!line.startsWith('RUN ')) continue;
    config = { ...startConfig, ...JSON.parse(line.slice(4)) };
    const result = await roles[config.role](context, waitForGo());
    await write(`RESULT ${JSON.stringify(result)}`);
    if (result.closed || result.exit) process.exit(0);
  }
  await context.app.close();
  process.exit(0);
})().catch((error) => {
  // The driver's error is the library error's cause: show it first (the bench prints the start).
  const cause = error?.cause
    ? `${error.cause.code ?? ''} ${error.cause.message ?? error.cause} ← `
    : '';
  process.stderr.write(`${cause}${error && error.stack ? error.stack : error}\n`);
  process.exit(1);
});
