import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

/** Runs a plain .js script of test/support in a child process. */
export function spawnSupport(script: string, config: unknown): ChildProcess {
  return spawn(process.execPath, [join(__dirname, script), JSON.stringify(config)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Resolves with the first stdout line matching `pattern`; rejects if the child exits first. */
export function waitForLine(
  child: ChildProcess,
  pattern: RegExp,
  timeoutMs = 30_000,
): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(
      () => reject(new Error(`no ${pattern} within ${timeoutMs} ms: ${err}`)),
      timeoutMs,
    );
    child.stderr!.on('data', (chunk) => (err += String(chunk)));
    child.stdout!.on('data', (chunk) => {
      out += String(chunk);
      const line = out.split('\n').find((l) => pattern.test(l));
      if (line !== undefined) {
        clearTimeout(timer);
        resolve(line);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`child exited with ${code} before ${pattern}: ${err}`));
    });
  });
}

/** Collects all stdout of a child and resolves when it exits with 0. */
export function runToEnd(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stdout!.on('data', (chunk) => (out += String(chunk)));
    child.stderr!.on('data', (chunk) => (err += String(chunk)));
    child.on('exit', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`child exited with ${code}: ${err}`)),
    );
  });
}
