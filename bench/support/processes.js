// Starts bench workers as OS processes and runs them in step. A set of workers (a crew) can
// run several runs one after the other (e.g. the library, then the native lock) without
// starting its processes again: 64 Node.js processes take ~20 s to start on 2 cores.
const { spawn } = require('node:child_process');
const { join } = require('node:path');

const WORKER = join(__dirname, '..', 'worker.js');

/** Spawns one worker; `next(prefix)` resolves its next stdout line that starts with `prefix`. */
function startWorker(config, nodeArgs = []) {
  const child = spawn(process.execPath, [...nodeArgs, WORKER, JSON.stringify(config)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  // A worker that ended by itself no longer reads: a late EXIT must not fail the bench.
  child.stdin.on('error', () => undefined);
  let buffer = '';
  let err = '';
  const lines = [];
  let waiting = null;
  let exited = null;
  const deliver = () => {
    if (!waiting) return;
    const index = lines.findIndex((l) => l.startsWith(waiting.prefix));
    if (index !== -1) {
      const [line] = lines.splice(0, index + 1).slice(-1);
      const { resolve } = waiting;
      waiting = null;
      resolve(line);
    } else if (exited) {
      const { reject } = waiting;
      waiting = null;
      reject(exited);
    }
  };
  child.stdout.on('data', (chunk) => {
    buffer += chunk;
    const parts = buffer.split('\n');
    buffer = parts.pop();
    lines.push(...parts);
    deliver();
  });
  child.stderr.on('data', (chunk) => (err += chunk));
  child.on('close', (code) => {
    exited = new Error(
      `worker ${config.role}${config.variant ? `/${config.variant}` : ''} exited with ${code}: ${err}`,
    );
    deliver();
  });
  return {
    child,
    next(prefix) {
      return new Promise((resolve, reject) => {
        waiting = { prefix, resolve: (line) => resolve(line.slice(prefix.length)), reject };
        deliver();
      });
    },
    send(line) {
      if (child.exitCode === null && child.stdin.writable) child.stdin.write(line + '\n');
    },
  };
}

const ns = (seconds) => BigInt(Math.round(seconds * 1e9));

/** Starts one worker per configuration (`role` and app options); resolves once all are up. */
async function startCrew(configs, nodeArgs) {
  const workers = configs.map((config) => startWorker(config, nodeArgs));
  const close = async () => {
    for (const w of workers) w.send('EXIT');
    await Promise.all(
      workers.map(
        (w) =>
          new Promise((resolve) => {
            if (w.child.exitCode !== null || w.child.signalCode !== null) return resolve();
            const timer = setTimeout(() => w.child.kill('SIGTERM'), 10_000);
            w.child.once('close', () => (clearTimeout(timer), resolve()));
          }),
      ),
    );
  };
  try {
    await Promise.all(workers.map((w) => w.next('UP')));
  } catch (error) {
    for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGTERM');
    throw error;
  }
  return {
    size: workers.length,
    /**
     * One run: sends each worker its run options (`runs[i]`), waits until all are ready,
     * then starts them at once with one timetable (process.hrtime.bigint(), one clock for
     * every process on Linux):
     * - `hold` seconds in which a holder keeps the lock and the others wait (0: none),
     *   sampled from `holdSample` (after a settling time) to `holdUntil`, `holdMid` in it;
     * - `warmup` seconds, then the measured window [from, until] of `seconds`, `windowMid` in it.
     * `during(times)` runs in the parent meanwhile (server counters) and resolves `server`.
     * Times in the results are ns since `origin`.
     */
    async run(runs, { warmup, seconds, hold = 0, during }) {
      try {
        workers.forEach((w, i) => w.send(`RUN ${JSON.stringify(runs[i] ?? {})}`));
        await Promise.all(workers.map((w) => w.next('READY')));
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
        for (const w of workers) w.send(`GO ${JSON.stringify(message)}`);
        const server = during ? during(times) : Promise.resolve(null);
        const results = await Promise.all(
          workers.map(async (w) => JSON.parse(await w.next('RESULT '))),
        );
        const rel = (t) => Number(t - origin);
        return {
          results,
          server: await server,
          window: [rel(from), rel(until)],
          hold: hold > 0 ? [rel(times.holdSample), rel(holdUntil)] : null,
        };
      } catch (error) {
        for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGTERM');
        throw error;
      }
    },
    close,
  };
}

/** Starts workers, makes one run, stops them. */
async function runWorkers(configs, plan) {
  const crew = await startCrew(configs, plan.nodeArgs);
  try {
    return await crew.run([], plan);
  } finally {
    await crew.close();
  }
}

module.exports = { startCrew, runWorkers };
