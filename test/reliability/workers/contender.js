// Child process of the contention tests (R1, R10, R11, R15): takes one lock name over
// and over and, inside the section, increments a counter by read-modify-write (plain, or
// through the fence-checking store). Every grant, write and release goes to an events
// file with synchronous writes, so that a SIGKILLed process leaves its history behind.
const {
  startApp,
  exec,
  errorInfo,
  hr,
  eventLog,
  sleep,
  grantTime,
  FencedStore,
} = require('./common');

const config = JSON.parse(process.argv[2]);
const record = eventLog(config.eventsFile);
setTimeout(() => process.exit(3), config.maxLifeMs ?? 15 * 60_000).unref();

async function increment(ctx, lock) {
  const { kind, counterTable, counterKey } = config;
  if (config.fenced) {
    const store = new FencedStore(ctx.dataSource, kind, counterTable);
    const read = await store.read(counterKey, lock.fence);
    if (read === null) return { accepted: false };
    await new Promise((resolve) => setImmediate(resolve));
    if (config.sectionMs) await sleep(config.sectionMs);
    const accepted = await store.write(counterKey, Number(read.value) + 1, lock.fence);
    return { accepted, value: Number(read.value) + 1 };
  }
  const { records } = await exec(
    ctx.dataSource,
    kind,
    `SELECT value FROM ${counterTable} WHERE k = ?`,
    [counterKey],
  );
  const value = Number(records[0].value);
  await new Promise((resolve) => setImmediate(resolve));
  if (config.sectionMs) await sleep(config.sectionMs);
  const written = await exec(
    ctx.dataSource,
    kind,
    `UPDATE ${counterTable} SET value = ? WHERE k = ?`,
    [String(value + 1), counterKey],
  );
  return { accepted: written.affected === 1, value: value + 1 };
}

(async () => {
  const ctx = await startApp(config);
  process.stdout.write(`READY ${process.pid}\n`);
  if (config.startGate) {
    // Start together with the other contenders: the test writes GO once all are ready.
    await new Promise((resolve) => process.stdin.once('data', resolve));
  }
  const ttlMs = config.ttlMs;
  const stopAt = config.durationMs ? performance.now() + config.durationMs : Infinity;
  let done = 0;
  let grants = 0;
  let maxWaitMs = 0;
  while (done < (config.iterations ?? Infinity) && performance.now() < stopAt) {
    const started = performance.now();
    let lock;
    try {
      lock = await ctx.service.lock(config.name, config.timeoutMs, { ttlMs });
    } catch (error) {
      const waited = performance.now() - started;
      maxWaitMs = Math.max(maxWaitMs, waited);
      record({
        e: 'lock-error',
        name: config.name,
        error: errorInfo(error).class,
        waitedMs: waited,
      });
      await sleep(20 + Math.random() * 30);
      continue;
    }
    const grantHr = hr();
    const appNow = Date.now();
    const waited = performance.now() - started;
    maxWaitMs = Math.max(maxWaitMs, waited);
    grants++;
    const expiresAt = lock.expiresAt.getTime();
    lock.signal.addEventListener('abort', () =>
      record({ e: 'lost', name: config.name, fence: lock.fence, exp: lock.expiresAt.getTime() }),
    );
    record({
      e: 'grant',
      hr: grantHr,
      name: config.name,
      fence: lock.fence,
      dbAt: await grantTime(ctx.service, lock),
      exp: expiresAt,
      appNow,
      waitedMs: waited,
      last: lock.lastError ? lock.lastError.name : null,
    });
    try {
      const result = await increment(ctx, lock);
      record({ e: 'write', name: config.name, fence: lock.fence, ...result });
    } catch (error) {
      record({
        e: 'write-error',
        name: config.name,
        fence: lock.fence,
        error: errorInfo(error).class,
      });
    }
    const sectionEnd = hr();
    try {
      await lock.unlock();
      record({
        e: 'release',
        name: config.name,
        fence: lock.fence,
        ok: true,
        sectionEnd,
        exp: lock.expiresAt.getTime(),
      });
    } catch (error) {
      record({
        e: 'release',
        name: config.name,
        fence: lock.fence,
        ok: false,
        error: errorInfo(error).class,
        sectionEnd,
        exp: lock.expiresAt.getTime(),
      });
    }
    done++;
  }
  process.stdout.write(JSON.stringify({ pid: process.pid, done, grants, maxWaitMs }) + '\n');
  await ctx.app.close().catch(() => undefined);
  process.exit(0);
})().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error) + '\n');
  process.exit(1);
});
