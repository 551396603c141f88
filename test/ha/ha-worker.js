// Child process of the HA suites. Starts a Nest application context with RLockModule
// from the built package (dist/), prints READY, waits for GO on stdin, then works:
//   mode "loop": until the deadline, take the lock, read and write a fenced counter row,
//                unlock (every `errorEvery`-th time with an error for the next holder);
//   mode "hold": take the lock once, hold it (renewed in the background) for `holdMs`, unlock.
// Every grant/release/loss is appended as one JSON line to `eventsFile`, with the
// process-independent monotonic clock (`t`, µs, process.hrtime) and the database clock.
// Plain CommonJS: run with `node`.
const { openSync, writeSync } = require('node:fs');
const timers = require('node:timers');
const { startChildApp } = require('../support/child-app');

const config = JSON.parse(process.argv[2]);
const fd = openSync(config.eventsFile, 'a');
const nowUs = () => Number(process.hrtime.bigint() / 1000n);
const sleep = (ms) => new Promise((resolve) => timers.setTimeout(resolve, ms));
const pid = process.pid;

/** Appends one event (synchronously, so that it survives a kill). */
function emit(event) {
  writeSync(fd, JSON.stringify({ ...event, pid, w: config.label }) + '\n');
}

/** The driver's code or message behind a library error, for the record. */
function causeOf(error) {
  const cause = error && error.cause;
  if (!cause) return undefined;
  return String(cause.code || cause.errno || cause.message || cause).slice(0, 120);
}

function placeholders(sql) {
  let i = 0;
  return config.kind === 'postgres' ? sql.replace(/\?/g, () => `$${++i}`) : sql;
}

/** Rows changed by an UPDATE, whatever the driver's result shape. */
function changed(result) {
  if (Array.isArray(result)) return Number(result[1] ?? 0);
  return Number(result.affectedRows ?? 0);
}

/**
 * The database time (ms) of the grant of `lock`: the row's `acquired_at`, read while the
 * lock is held (`expiresAt − ttl` no longer dates a grant: a hand-off grants a lease of
 * min(ttl, 1.5 s) until the new holder renews). Null when the row has moved on to a later
 * fence or the database did not answer for a second (a failover): the checker counts it.
 */
async function grantTime(service, lock) {
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const state = await service.inspect(lock.name);
      if (state === null || state.fence !== lock.fence || state.acquiredAt === null) return null;
      return state.acquiredAt.getTime();
    } catch {
      await sleep(200);
    }
  }
  return null;
}

/** Takes the lock, recording the grant (or the failure) and a later loss. */
async function take(service, name) {
  const t0 = nowUs();
  let lock;
  try {
    lock = await service.lock(name, config.acquireTimeoutMs, { ttlMs: config.ttlMs });
  } catch (error) {
    emit({ e: 'acquire-error', n: name, t0, t: nowUs(), err: error.name, cause: causeOf(error) });
    return null;
  }
  const t = nowUs();
  lock.signal.addEventListener(
    'abort',
    () =>
      emit({
        e: 'lost',
        n: name,
        f: lock.fence,
        t: nowUs(),
        why: String(lock.signal.reason?.message),
      }),
    { once: true },
  );
  emit({
    e: 'grant',
    n: name,
    f: lock.fence,
    t0,
    t,
    db: await grantTime(service, lock),
    last: lock.lastError ? lock.lastError.name : null,
    lastMsg: lock.lastError ? lock.lastError.message : null,
  });
  return lock;
}

/** Unlocks, recording the outcome passed on and whether the release was accepted. */
async function release(lock, error) {
  const t = nowUs();
  try {
    await lock.unlock(error);
    emit({
      e: 'release',
      n: lock.name,
      f: lock.fence,
      t,
      t1: nowUs(),
      err: error ? error.message : null,
    });
  } catch (unlockError) {
    emit({
      e: 'release-error',
      n: lock.name,
      f: lock.fence,
      t,
      t1: nowUs(),
      err: unlockError.name,
      cause: causeOf(unlockError),
    });
  }
}

/** The critical section: read the counter, yield (and wait), write value + 1 only with a newer fence. */
async function section(dataSource, lock) {
  const table = config.counterTable;
  try {
    const rows = await dataSource.query(placeholders(`SELECT value FROM ${table} WHERE id = ?`), [
      lock.name,
    ]);
    const value = Number(rows[0].value);
    if (config.sectionMs) await sleep(config.sectionMs);
    else await new Promise((resolve) => timers.setImmediate(resolve));
    const result = await dataSource.query(
      placeholders(`UPDATE ${table} SET value = ?, fence = ? WHERE id = ? AND fence < ?`),
      [value + 1, lock.fence, lock.name, lock.fence],
    );
    emit({ e: 'write', n: lock.name, f: lock.fence, t: nowUs(), ok: changed(result) === 1 });
  } catch (error) {
    emit({
      e: 'write-error',
      n: lock.name,
      f: lock.fence,
      t: nowUs(),
      cause: String(error.code || error.message).slice(0, 120),
    });
  }
}

(async () => {
  const { service, dataSource } = await startChildApp({
    kind: config.kind,
    url: config.url,
    rlock: { tableName: config.tableName, holder: config.label },
  });
  process.stdout.write('READY\n');
  await new Promise((resolve) => process.stdin.once('data', resolve));
  const deadline = nowUs() + config.runMs * 1000;
  let iterations = 0;
  if (config.mode === 'hold') {
    const lock = await take(service, config.name);
    if (lock) {
      process.stdout.write(`HELD ${lock.fence}\n`);
      await sleep(config.holdMs);
      await release(lock, null);
    }
  } else {
    while (nowUs() < deadline) {
      const lock = await take(service, config.name);
      if (!lock) {
        await sleep(50);
        continue;
      }
      iterations += 1;
      await section(dataSource, lock);
      const withError = config.errorEvery > 0 && iterations % config.errorEvery === 0;
      await release(
        lock,
        withError ? new Error(`outcome of ${config.label} fence ${lock.fence}`) : null,
      );
    }
  }
  emit({ e: 'done', t: nowUs(), iterations });
  process.stdout.write('DONE\n');
  process.exit(0);
})().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error) + '\n');
  process.exit(1);
});
