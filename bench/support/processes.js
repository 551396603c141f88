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

/**
 * Runs `count` workers of one configuration: waits until all are ready, starts them at once
 * (warm-up, then a measured window of `seconds`), and resolves with their results.
 * `during(window)` runs in the parent around the window (server counters).
 */
async function runWorkers(configs, { warmup, seconds, nodeArgs, during }) {
  const workers = configs.map((config) => startWorker(config, nodeArgs));
  try {
    await Promise.all(workers.map((w) => w.ready));
    const from = process.hrtime.bigint() + BigInt(Math.round(warmup * 1e9));
    const until = from + BigInt(Math.round(seconds * 1e9));
    const go = `GO ${JSON.stringify({ from: String(from), until: String(until) })}\n`;
    for (const w of workers) w.child.stdin.write(go);
    const server = during ? during(from, until) : Promise.resolve(null);
    const results = await Promise.all(workers.map((w) => w.result));
    return { results, server: await server };
  } finally {
    for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGTERM');
  }
}

module.exports = { startWorker, runWorkers };
