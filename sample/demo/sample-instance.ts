import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';

/** Where the compiled sample app is. */
const APP_MAIN = join(__dirname, '..', 'app', 'main.js');

/** The answer to one HTTP request, or the connection failing. */
export interface HttpAnswer {
  status: number | 'connection-lost';
  body: any;
}

/** One instance of the sample app, running as its own OS process. */
export class SampleInstance {
  private child: ChildProcess | undefined;
  private baseUrl: string | undefined;
  /** Set once the process was killed with SIGKILL. */
  killedAt: number | undefined;

  constructor(
    /** Short name: `i1`, `i2`, … (also the lock holder label). */
    readonly name: string,
    private readonly env: NodeJS.ProcessEnv,
    private readonly logFile: string,
  ) {}

  /** The process id. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Whether the instance was started and has not been killed. */
  get alive(): boolean {
    return this.child !== undefined && this.killedAt === undefined && this.child.exitCode === null;
  }

  /** Starts the process and resolves once it listens. */
  start(timeoutMs = 30_000): Promise<void> {
    const log = createWriteStream(this.logFile);
    const child = spawn(process.execPath, [APP_MAIN, '--port', '0', '--instance', this.name], {
      env: { ...process.env, ...this.env, NO_COLOR: '1', SAMPLE_LOG: 'debug' },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    this.child = child;
    child.stderr!.pipe(log);
    return new Promise((resolve, reject) => {
      let seen = '';
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(
          new Error(`${this.name} did not start within ${timeoutMs} ms (log: ${this.logFile})`),
        );
      }, timeoutMs);
      child.stdout!.on('data', (chunk: Buffer) => {
        log.write(chunk);
        if (this.baseUrl !== undefined) return;
        seen += chunk.toString();
        const match = /listening on (http:\/\/\S+)/.exec(seen);
        if (match) {
          this.baseUrl = match[1];
          clearTimeout(timer);
          resolve();
        }
      });
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        if (this.baseUrl === undefined) {
          reject(
            new Error(
              `${this.name} exited (${signal ?? code}) before listening; see ${this.logFile}`,
            ),
          );
        }
      });
    });
  }

  /** Kills the process at once, as a crash would: no shutdown hook runs. */
  kill(): void {
    this.killedAt = Date.now();
    this.child?.kill('SIGKILL');
  }

  /** Stops the process gracefully (SIGTERM: Nest's shutdown hooks release its locks). */
  async stop(timeoutMs = 10_000): Promise<void> {
    const child = this.child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    await exited;
    clearTimeout(timer);
  }

  /** Sends a request; a connection that fails (a killed instance) is an answer too. */
  async request(method: 'GET' | 'POST', path: string, timeoutMs: number): Promise<HttpAnswer> {
    if (this.baseUrl === undefined) throw new Error(`${this.name} is not started`);
    try {
      const response = await fetch(this.baseUrl + path, {
        method,
        signal: AbortSignal.timeout(timeoutMs),
      });
      const text = await response.text();
      return { status: response.status, body: text === '' ? null : JSON.parse(text) };
    } catch (error) {
      if ((error as Error).name === 'TimeoutError') throw error;
      return {
        status: 'connection-lost',
        body: { message: String((error as Error).cause ?? error) },
      };
    }
  }
}
