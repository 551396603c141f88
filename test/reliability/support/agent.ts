import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { TestDatabase } from '../../support/databases';

/** What every child process of the suite is told about its database. */
export interface ChildConfig {
  kind: TestDatabase['kind'];
  url: string;
  table: string;
  eventsFile?: string;
  rlock?: Record<string, unknown>;
  poolSize?: number;
  appName?: string;
  [key: string]: unknown;
}

/** Environment and node flags of a child whose wall clock is faked (R11). */
export interface FakeClock {
  offsetMs: number;
  jumpMs?: number;
}

const WORKERS = join(__dirname, '..', 'workers');

/** Spawns a worker script of test/reliability/workers with its JSON config. */
export function spawnWorker(script: string, config: ChildConfig, clock?: FakeClock): ChildProcess {
  const execArgv = clock ? ['-r', join(WORKERS, 'fake-clock.js')] : [];
  const env = { ...process.env };
  if (clock) {
    env.RLOCK_FAKE_CLOCK_OFFSET_MS = String(clock.offsetMs);
    env.RLOCK_FAKE_CLOCK_JUMP_MS = String(clock.jumpMs ?? 0);
  }
  return spawn(process.execPath, [...execArgv, join(WORKERS, script), JSON.stringify(config)], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env,
  });
}

type Reply = { id?: number; ready?: boolean; result?: any; failure?: any };

/**
 * A child process that holds locks on command (test/reliability/workers/agent.js): the
 * test sends an operation, the child answers with its result.
 */
export class Agent {
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (v: any) => void; reject: (e: Error) => void }
  >();
  private stderr = '';
  private exited = false;

  private constructor(readonly child: ChildProcess) {
    child.stderr!.on('data', (chunk) => (this.stderr += String(chunk)));
    child.on('exit', (code, signal) => {
      this.exited = true;
      for (const { reject } of this.pending.values()) {
        reject(new Error(`agent ${child.pid} exited (${code ?? signal}): ${this.stderr}`));
      }
      this.pending.clear();
    });
  }

  /** Starts an agent and waits until its Nest application is up. */
  static async start(config: ChildConfig, clock?: FakeClock): Promise<Agent> {
    const agent = new Agent(spawnWorker('agent.js', config, clock));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`agent did not start: ${agent.stderr}`)),
        60_000,
      );
      const lines = createInterface({ input: agent.child.stdout! });
      lines.on('line', (line) => {
        const message = JSON.parse(line) as Reply;
        if (message.ready) {
          clearTimeout(timer);
          resolve();
          return;
        }
        const waiting = message.id === undefined ? undefined : agent.pending.get(message.id);
        if (!waiting) return;
        agent.pending.delete(message.id!);
        if (message.failure)
          waiting.reject(new Error(`agent ${op(message)}: ${JSON.stringify(message.failure)}`));
        else waiting.resolve(message.result);
      });
      agent.child.on('exit', () => {
        clearTimeout(timer);
        reject(new Error(`agent exited during startup: ${agent.stderr}`));
      });
    });
    return agent;
  }

  /** The child's process id. */
  get pid(): number {
    return this.child.pid!;
  }

  /** Sends one operation and resolves with the child's answer. */
  call<T = any>(
    operation: string,
    args: Record<string, unknown> = {},
    timeoutMs = 60_000,
  ): Promise<T> {
    if (this.exited) return Promise.reject(new Error(`agent ${this.pid} has exited`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`agent ${this.pid}: ${operation} got no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      this.child.stdin!.write(JSON.stringify({ id, op: operation, args }) + '\n');
    });
  }

  /** Sends a signal (SIGSTOP, SIGCONT, SIGKILL). */
  signal(signal: NodeJS.Signals): void {
    if (!this.exited) this.child.kill(signal);
  }

  /** Resolves when the process has exited. */
  waitExit(): Promise<void> {
    if (this.exited) return Promise.resolve();
    return new Promise((resolve) => this.child.once('exit', () => resolve()));
  }

  /** Asks the agent to close its app and exit; kills it if it does not within 5 s. */
  async stop(): Promise<void> {
    if (this.exited) return;
    this.child.kill('SIGCONT');
    const exited = this.waitExit();
    this.call('exit', {}, 5_000).catch(() => undefined);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }
}

function op(message: Reply): string {
  return `reply ${message.id}`;
}

/** Stops every agent, ignoring the ones already gone. */
export async function stopAll(agents: Array<Agent | undefined>): Promise<void> {
  await Promise.all(agents.map((a) => a?.stop()));
}
