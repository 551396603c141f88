// A child process driven by the test over stdin: one JSON command a line, one JSON reply
// a line on stdout. It holds locks through the public API of dist/ and records the
// history events (grant, release, lost) of every lock it takes.
const { createInterface } = require('node:readline');
const {
  startApp,
  exec,
  connectionIds,
  errorInfo,
  hr,
  eventLog,
  lastErrorInfo,
  grantTime,
  FencedStore,
} = require('./common');
const { LeaseExpiredError, LockLostError, RemoteLockError } = require('../../../dist');

/** The error class R5 hands from one holder to the next. */
class PaymentFailedError extends Error {
  constructor(message, code, retryable) {
    super(message);
    this.name = 'PaymentFailedError';
    this.code = code;
    this.retryable = retryable;
  }
}

const CLASSES = {
  LeaseExpired: LeaseExpiredError,
  PaymentFailed: PaymentFailedError,
  RemoteLock: RemoteLockError,
};

const config = JSON.parse(process.argv[2]);
const record = eventLog(config.eventsFile);
const handles = new Map();
let queryCount = 0;

/** Counts every statement this process sends, at the driver (R12: queries/s of sleeping waiters). */
function countQueries(dataSource) {
  const count = (target, method) => {
    const original = target[method];
    target[method] = function (...args) {
      queryCount++;
      return original.apply(this, args);
    };
  };
  if (config.kind === 'postgres') count(dataSource.driver.master, 'query');
  else if (config.kind === 'mariadb') count(dataSource.driver.pool, 'query');
  else {
    const statement = Object.getPrototypeOf(
      dataSource.driver.databaseConnection.prepare('SELECT 1'),
    );
    for (const method of ['get', 'all', 'run']) count(statement, method);
  }
}
let nextHandle = 1;

function reply(message) {
  process.stdout.write(JSON.stringify(message) + '\n');
}

/** Builds the value `unlock(error)` is called with, for R5 and R13. */
function errorValue(spec) {
  if (spec === undefined) return undefined;
  switch (spec.kind) {
    case 'payment':
      return new PaymentFailedError(spec.message, spec.code, spec.retryable);
    case 'plain':
      return new Error(spec.message);
    case 'null':
      return null;
    default:
      throw new Error(`unknown error kind ${spec.kind}`);
  }
}

function describeLock(handle, lock, extra = {}) {
  return {
    handle,
    fence: lock.fence,
    expiresAt: lock.expiresAt.getTime(),
    lastError: lastErrorInfo(lock, CLASSES),
    ...extra,
  };
}

/** Records the grant of `lock` (with the hr and wall clock of the moment it was granted) and its loss. */
async function track(ctx, lock, grantHr) {
  const appNow = Date.now();
  const handle = nextHandle++;
  handles.set(handle, lock);
  const expiresAt = lock.expiresAt.getTime();
  lock.signal.addEventListener('abort', () => {
    const reason = lock.signal.reason;
    record({
      e: 'lost',
      name: lock.name,
      fence: lock.fence,
      exp: lock.expiresAt.getTime(),
      reason: reason instanceof Error ? reason.constructor.name : String(reason),
    });
  });
  record({
    e: 'grant',
    hr: grantHr,
    name: lock.name,
    fence: lock.fence,
    dbAt: await grantTime(ctx.service, lock),
    exp: expiresAt,
    appNow,
    last: lock.lastError ? lock.lastError.name : null,
  });
  return handle;
}

function lockOf(handle) {
  const lock = handles.get(handle);
  if (!lock) throw new Error(`no handle ${handle}`);
  return lock;
}

const ops = {
  async lock(ctx, { name, timeoutMs, ttlMs }) {
    const started = performance.now();
    try {
      const lock = await ctx.service.lock(
        name,
        timeoutMs,
        ttlMs === undefined ? undefined : { ttlMs },
      );
      const grantHr = hr();
      const elapsedMs = performance.now() - started;
      const handle = await track(ctx, lock, grantHr);
      return describeLock(handle, lock, { elapsedMs, grantHr });
    } catch (error) {
      return { error: errorInfo(error), elapsedMs: performance.now() - started };
    }
  },

  async tryLock(ctx, { name, ttlMs }) {
    const lock = await ctx.service.tryLock(name, ttlMs === undefined ? undefined : { ttlMs });
    if (lock === null) return { handle: null };
    return describeLock(await track(ctx, lock, hr()), lock);
  },

  /** `count` concurrent lock() calls; every one is expected to time out (R6). */
  async lockMany(ctx, { name, timeoutMs, count }) {
    const calls = Array.from({ length: count }, async () => {
      const started = performance.now();
      try {
        const lock = await ctx.service.lock(name, timeoutMs);
        const elapsedMs = performance.now() - started;
        await lock.unlock();
        return { granted: true, elapsedMs };
      } catch (error) {
        return { error: errorInfo(error), elapsedMs: performance.now() - started };
      }
    });
    return { results: await Promise.all(calls) };
  },

  async unlock(ctx, { handle, error }) {
    const lock = lockOf(handle);
    const sectionEnd = hr();
    try {
      await lock.unlock(errorValue(error));
      record({
        e: 'release',
        name: lock.name,
        fence: lock.fence,
        ok: true,
        sectionEnd,
        exp: lock.expiresAt.getTime(),
      });
      return { ok: true, unlockHr: sectionEnd };
    } catch (thrown) {
      const info = errorInfo(thrown);
      record({
        e: 'release',
        name: lock.name,
        fence: lock.fence,
        ok: false,
        error: info.class,
        sectionEnd,
        exp: lock.expiresAt.getTime(),
      });
      return { error: info, isLockLost: thrown instanceof LockLostError };
    }
  },

  async extend(ctx, { handle, ttlMs }) {
    const lock = lockOf(handle);
    try {
      await lock.extend(ttlMs);
      return { ok: true, expiresAt: lock.expiresAt.getTime() };
    } catch (thrown) {
      return { error: errorInfo(thrown), isLockLost: thrown instanceof LockLostError };
    }
  },

  async state(ctx, { handle }) {
    const lock = lockOf(handle);
    const reason = lock.signal.reason;
    return {
      isHeld: lock.isHeld,
      aborted: lock.signal.aborted,
      reasonIsLockLost: reason instanceof LockLostError,
      reason: reason instanceof Error ? reason.message : null,
      expiresAt: lock.expiresAt.getTime(),
    };
  },

  /** Reads through the fence-checking store with this lock's fence (whatever the lock's state). */
  async storeRead(ctx, { handle, table, key }) {
    const store = new FencedStore(ctx.dataSource, config.kind, table);
    return { read: await store.read(key, lockOf(handle).fence) };
  },

  async storeWrite(ctx, { handle, table, key, value }) {
    const store = new FencedStore(ctx.dataSource, config.kind, table);
    return { accepted: await store.write(key, value, lockOf(handle).fence) };
  },

  async connectionIds(ctx) {
    return { ids: connectionIds(ctx.dataSource, config.kind) };
  },

  /** Makes sure the pool has opened `count` connections (so that all of them can be killed). */
  async warmPool(ctx, { count }) {
    const runners = Array.from({ length: count }, () => ctx.dataSource.createQueryRunner());
    await Promise.all(runners.map((r) => r.query('SELECT 1')));
    await Promise.all(runners.map((r) => r.release()));
    return { ids: connectionIds(ctx.dataSource, config.kind) };
  },

  async inspect(ctx, { name }) {
    const state = await ctx.service.inspect(name);
    return {
      state: state && { ...state, lastError: state.lastError ? errorInfo(state.lastError) : null },
    };
  },

  async sql(ctx, { text, params }) {
    return exec(ctx.dataSource, config.kind, text, params);
  },

  /** Statements sent to the database so far (counted at the driver, see countQueries()). */
  async queries() {
    return { count: queryCount };
  },

  async clock() {
    return { appNow: Date.now() };
  },

  async exit(ctx) {
    setTimeout(async () => {
      await ctx.app.close().catch(() => undefined);
      process.exit(0);
    }, 0);
    return { ok: true };
  },
};

setTimeout(() => process.exit(3), config.maxLifeMs ?? 15 * 60_000).unref();

(async () => {
  const ctx = await startApp(config, { errors: [PaymentFailedError] });
  if (config.countQueries) countQueries(ctx.dataSource);
  reply({ ready: true, pid: process.pid });
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    const { id, op, args } = JSON.parse(line);
    Promise.resolve()
      .then(() => ops[op](ctx, args ?? {}))
      .then(
        (result) => reply({ id, result }),
        (error) => reply({ id, failure: errorInfo(error) }),
      );
  });
  // The test went away: do not outlive it.
  lines.on('close', () => process.exit(0));
})().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error) + '\n');
  process.exit(1);
});
