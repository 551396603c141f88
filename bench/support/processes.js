// Starts bench workers as OS processes and runs them in step.
const { spawn } = require('node:child_process');
const { join } = require('node:path');

const WORKER = join(__dirname, '..', 'worker.js');

/** Spawns one worker; resolves once it printed READY. */
function startWorker(config, nodeArgs = []) {
  const child = spawn(process.execPath, [...nodeArgs, WORKER, JSON.stringify(config)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const result = new Promise((resolve, reject) => {
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const complete = out.slice(0, out.lastIndexOf('\n') + 1);
      const line = complete.split('\n').find((l) => l.startsWith('RESULT '));
      if (line) resolve(JSON.parse(line.slice(7)));
    });
    child.stderr.on('data', (chunk) => (err += chunk));
    child.on('close', (code) => {
      if (code !== 0)
        reject(
          new Error(`worker ${config.role}/${config.variant ?? ''} exited with ${code}: ${err}`),
        );
      else if (!/^RESULT .*\n/m.test(out))
        reject(new Error(`worker exited without a result: ${err}`));
    });
  });
  result.catch(() => undefined);
  const ready = new Promise((resolve, reject) => {
    const check = () => out.includes('READY\n') && resolve();
    child.stdout.on('data', check);
    result.catch(reject);
  });
  return { child, ready, result };
}

const ns = (seconds) => BigInt(Math.round(seconds * 1e9));

/**
 * Runs workers (one per configuration): waits until all are ready, then starts them at
 * once with one timetable (process.hrtime.bigint(), one clock for every process on Linux):
 * - `hold` seconds in which a holder keeps the lock and the others wait (0: none), sampled
 *   between `holdSample` (a settling time after the start) and its end, `holdMid` in it;
 * - `warmup` seconds, then the measured window [from, until] of `seconds`, `windowMid` in it.
 * `during(times)` runs in the parent meanwhile (server counters) and resolves `server`.
 */
async function runWorkers(configs, { warmup, seconds, hold = 0, nodeArgs, during }) {
  const workers = configs.map((config) => startWorker(config, nodeArgs));
  try {
    await Promise.all(workers.map((w) => w.ready));
    const origin = process.hrtime.bigint() + ns(0.2);
    const holdUntil = origin + ns(hold);
    const from = holdUntil + ns(warmup);
    const until = from + ns(seconds);
    const settle = ns(Math.min(0.5, hold / 4));
    const times = {
      origin,
      holdSample: origin + settle,
      holdMid: origin + (holdUntil - origin) / 2n + settle / 2n,
      holdUntil,
      from,
      windowMid: from + (until - from) / 2n,
      until,
    };
    const message = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, String(v)]));
    const go = `GO ${JSON.stringify(message)}\n`;
    for (const w of workers) w.child.stdin.write(go);
    const server = during ? during(times) : Promise.resolve(null);
    const results = await Promise.all(workers.map((w) => w.result));
    // Times relative to the origin, as the workers report their events.
    const rel = (t) => Number(t - origin);
    return {
      results,
      server: await server,
      window: [rel(from), rel(until)],
      hold: hold > 0 ? [rel(times.holdSample), rel(holdUntil)] : null,
    };
  } finally {
    for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGTERM');
  }
}

module.exports = { startWorker, runWorkers };
