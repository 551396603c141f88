// One bench worker process. Reads its role from argv[2] (JSON), sets up, prints READY,
// waits for `GO {"from":ns,"until":ns}` on stdin (process.hrtime.bigint(): one clock for
// every process on Linux), runs until `until`, prints `RESULT <json>` and exits.
const { startApp, rlock } = require('./support/app');
const { countQueries } = require('./support/query-counter');
const { nativeSession, rawStatements, ensureRawRow } = require('./support/native-lock');
const { ownStatements } = require('./support/own-statements');

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
        const go = JSON.parse(line.slice(3));
        resolve({ from: BigInt(go.from), until: BigInt(go.until) });
      }
    });
  });
}

/** Counts queries sent inside [from, until). */
function queryWindow(go) {
  let start;
  let end;
  const at = (ns, fn) => setTimeout(fn, Math.max(0, Number(ns - now()) / 1e6)).unref();
  at(go.from, () => (start = counter.sent));
  at(go.until, () => (end = counter.sent));
  return () => (end ?? counter.sent) - (start ?? 0);
}

const roles = {
  /** lock + unlock in a loop on this worker's own name (rlock | raw | native). */
  async cycle({ service, dataSource }, go) {
    const name = `${config.name}:${process.pid}`;
    let step;
    let close = () => undefined;
    if (config.variant === 'rlock') {
      step = async () => (await service.lock(name, 10_000)).unlock();
    } else if (config.variant === 'raw') {
      const raw = rawStatements(config.kind, dataSource, config.table, config.url);
      close = () => raw.close();
      await ensureRawRow(config.kind, dataSource, config.table, name);
      let n = 0;
      step = async () => {
        const token = `${process.pid}-${n++}`;
        if (!(await raw.acquire(name, token))) throw new Error('raw acquire failed');
        if (!(await raw.release(name, token))) throw new Error('raw release failed');
      };
    } else {
      const session = await nativeSession(config.kind, dataSource);
      close = () => session.close();
      const id = 1_000_000 + process.pid;
      step = async () => {
        await session.lock(id);
        await session.unlock(id);
      };
    }
    for (let i = 0; i < 50; i++) await step(); // warm-up: prepared statements, JIT
    ready();
    go = await go;
    const sent = queryWindow(go);
    let cycles = 0;
    for (let t = now(); t < go.until; t = now()) {
      await step();
      if (t >= go.from) cycles++;
    }
    close();
    return { cycles, sent: sent() };
  },

  /**
   * Uncontended lock + unlock of the library, of the statements one library cycle sends
   * (recorded at the driver) replayed raw, of a naive lock table's two statements raw and
   * of the native lock, in alternating slices of 200 ms so that a changing machine load
   * (shared machine) weighs on all of them alike.
   */
  async compare({ service, dataSource }, go) {
    const name = `${config.name}:${process.pid}`;
    const steps = { rlock: async () => (await service.lock(name, 10_000)).unlock() };
    for (let i = 0; i < 50; i++) await steps.rlock(); // steady state: the row exists
    const own = await ownStatements(config.kind, dataSource, steps.rlock, () => counter.sent);
    steps.own = own.step;
    const raw = rawStatements(config.kind, dataSource, config.table, config.url);
    await ensureRawRow(config.kind, dataSource, config.table, `${name}:raw`);
    let n = 0;
    steps.raw = async () => {
      const token = `${process.pid}-${n++}`;
      if (!(await raw.acquire(`${name}:raw`, token))) throw new Error('raw acquire failed');
      if (!(await raw.release(`${name}:raw`, token))) throw new Error('raw release failed');
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
    raw.close();
    session?.close();
    const perSecond = Object.fromEntries(Object.keys(steps).map((k) => [k, cycles[k] / time[k]]));
    return { perSecond, own: { statements: own.statements, unrecorded: own.unrecorded } };
  },

  /**
   * Contended loop on one name: lock, read the counter row, write it + 1, unlock (rlock |
   * native | durable: the native lock plus a grant and a release UPDATE on a lock-table row,
   * autocommit, around the critical section).
   */
  async contend({ service, dataSource }, go) {
    const table = config.counterTable;
    const q = (sql) => (config.kind === 'postgres' ? sql.replace('?', '$1') : sql);
    let lock;
    let unlock;
    let read;
    let write;
    let close = () => undefined;
    if (config.variant === 'rlock') {
      let held;
      lock = async () => (held = await service.lock(config.name, 600_000));
      unlock = () => held.unlock();
      read = async () =>
        Number((await dataSource.query(`SELECT value FROM ${table} WHERE id = 1`))[0].value);
      write = (value) => dataSource.query(q(`UPDATE ${table} SET value = ? WHERE id = 1`), [value]);
    } else {
      const session = await nativeSession(config.kind, dataSource);
      close = () => session.close();
      lock = () => session.lock(config.nativeId);
      unlock = () => session.unlock(config.nativeId);
      read = () => session.read(table);
      write = (value) => session.write(table, value);
      if (config.variant === 'durable') {
        const raw = rawStatements(config.kind, dataSource, config.table, config.url);
        close = () => (raw.close(), session.close());
        await ensureRawRow(config.kind, dataSource, config.table, config.name);
        let n = 0;
        let token;
        lock = async () => {
          await session.lock(config.nativeId);
          token = `${process.pid}-${n++}`;
          if (!(await raw.acquire(config.name, token))) throw new Error('durable grant failed');
        };
        unlock = async () => {
          if (!(await raw.release(config.name, token))) throw new Error('durable release failed');
          await session.unlock(config.nativeId);
        };
      }
    }
    ready();
    go = await go;
    const sent = queryWindow(go);
    const events = [];
    let total = 0;
    for (;;) {
      await lock();
      const acquired = now();
      const value = await read();
      await write(value + 1);
      total++;
      const releasing = now();
      await unlock();
      if (acquired >= go.from && acquired < go.until) {
        events.push(Number(acquired - go.from), Number(releasing - go.from));
      }
      if (now() >= go.until) break;
    }
    close();
    return { events, total, sent: sent() };
  },

  /** Takes the lock and holds it until the end of the run. */
  async hold({ service }, go) {
    const lock = await service.lock(config.name, 10_000, { ttlMs: 600_000 });
    ready();
    go = await go;
    await sleepUntil(go.until);
    await lock.unlock();
    return {};
  },

  /** `waiters` concurrent lock() calls on a held name; counts the queries sent while they wait. */
  async storm({ service }, go) {
    ready();
    go = await go;
    const sent = queryWindow(go);
    let acquired = 0;
    for (let i = 0; i < config.waiters; i++) {
      service.lock(config.name, 600_000).then(
        (lock) => {
          acquired++;
          return lock.unlock();
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

  /** Heap after 1,000 and after 100,000 lock + unlock cycles; handles left after shutdown. */
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

function sleepUntil(ns) {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, Number(ns - now()) / 1e6)));
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
