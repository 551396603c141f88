import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseEvents, type LockEvent } from './history';

const run = promisify(execFile);

/** The monotonic clock the workers stamp their events with (µs, shared by all processes on Linux). */
export const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);

/** Runs `scripts/ha/<topology>.sh <args>` and resolves with its stdout. */
export async function haScript(topology: string, ...args: string[]): Promise<string> {
  const script = join(__dirname, '..', '..', 'scripts', 'ha', `${topology}.sh`);
  const { stdout } = await run('bash', [script, ...args], { timeout: 180_000 });
  return stdout;
}

/** Configuration of one ha-worker.js process. */
export interface WorkerConfig {
  kind: 'postgres' | 'mariadb';
  url: string;
  label: string;
  tableName: string;
  counterTable: string;
  name: string;
  mode: 'loop' | 'hold';
  runMs: number;
  holdMs?: number;
  ttlMs: number;
  acquireTimeoutMs: number;
  errorEvery: number;
  sectionMs?: number;
}

/** A started worker. */
export interface Worker {
  config: WorkerConfig;
  child: ChildProcess;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  /** Resolves when the worker printed `line`. */
  printed(line: RegExp): Promise<void>;
}

/** A directory collecting one run's event files, kept with the figures for a post-mortem. */
export function runDirectory(prefix: string): string {
  const parent = join(figuresDirectory(), 'events');
  mkdirSync(parent, { recursive: true });
  return mkdtempSync(join(parent, `${prefix}-`));
}

/** Where figures and event files of the last run are kept (`run-all.sh` empties it first). */
function figuresDirectory(): string {
  return process.env.RLOCK_HA_FIGURES_DIR ?? join(tmpdir(), 'rlock-ha-figures');
}

/** Starts the workers, waits until every one is READY, then sends GO to all at once. */
export async function startWorkers(dir: string, configs: WorkerConfig[]): Promise<Worker[]> {
  const workers = configs.map((config) => {
    const child = spawn(
      process.execPath,
      [
        join(__dirname, 'ha-worker.js'),
        JSON.stringify({ ...config, eventsFile: join(dir, `${config.label}.jsonl`) }),
      ],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    const waiting: { line: RegExp; resolve: () => void }[] = [];
    child.stdout!.on('data', (chunk) => {
      out += String(chunk);
      for (const w of [...waiting]) {
        if (w.line.test(out)) {
          waiting.splice(waiting.indexOf(w), 1);
          w.resolve();
        }
      }
    });
    child.stderr!.on('data', (chunk) => (err += String(chunk)));
    const exited = new Promise<number | null>((resolve) =>
      child.on('close', (code) => {
        if (code !== 0)
          process.stderr.write(`worker ${config.label} exited with ${code}: ${err}\n`);
        resolve(code);
      }),
    );
    const printed = (line: RegExp) =>
      new Promise<void>((resolve, reject) => {
        if (line.test(out)) return resolve();
        waiting.push({ line, resolve });
        void exited.then((code) =>
          reject(new Error(`worker ${config.label} exited (${code}) before ${line}: ${err}`)),
        );
      });
    return { config, child, exited, printed };
  });
  try {
    await Promise.all(workers.map((w) => w.printed(/READY/)));
  } catch (error) {
    killWorkers(workers);
    throw error;
  }
  for (const w of workers) w.child.stdin!.write('GO\n');
  return workers;
}

/** Kills workers still running (at the end of a failed test). */
export function killWorkers(workers: Worker[]): void {
  for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGKILL');
}

/** Reads every event file of a run directory. */
export function readEvents(dir: string): LockEvent[] {
  return readdirSync(dir)
    .filter((file) => file.endsWith('.jsonl'))
    .flatMap((file) => parseEvents(readFileSync(join(dir, file), 'utf8')));
}

/** Saves a topology's figures where `scripts/ha/run-all.sh` collects them, and prints them. */
export function saveFigures(topology: string, figures: Record<string, unknown>): void {
  const dir = figuresDirectory();
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${topology}.json`), JSON.stringify(figures, null, 2) + '\n');
  process.stdout.write(`\n${topology} figures: ${JSON.stringify(figures, null, 2)}\n`);
}

/** Percentile of a list of numbers (nearest rank). */
export function percentile(values: number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** Whether the HA suites must run (set by run-all.sh): a missing topology then fails instead of skipping. */
export const HA_REQUIRED = process.env.RLOCK_HA_REQUIRE === '1';
