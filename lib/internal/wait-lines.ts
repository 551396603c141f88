import { COURTESY_MS } from './backoff';

/** One caller waiting for a lock in this process. */
export class Waiter {
  private wakeUp: (() => void) | undefined;
  private woken = false;

  /** Sleeps up to `ms`, or until woken or `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (this.woken) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        this.wakeUp = undefined;
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      signal?.addEventListener('abort', done, { once: true });
      this.wakeUp = done;
    });
  }

  /** Ends the current sleep now (or the next one at once). */
  wake(): void {
    if (this.wakeUp) this.wakeUp();
    else this.woken = true;
  }
}

interface Line {
  readonly waiters: Waiter[];
  holders: number;
  /** An attempt of this process failed since it last took the lock: others want it too. */
  contended: boolean;
}

/**
 * Per lock, the callers of this process waiting in arrival order. Only the first one
 * asks the database, and it does not while this process itself holds the lock: it is
 * woken when the lock is released here, or when another process may have released it.
 */
export class WaitLines {
  private readonly lines = new Map<string, Line>();
  /** Per lock released here after contention: until when this process lets others go first, and the released fence. */
  private readonly courtesy = new Map<string, { until: number; fence: number }>();

  constructor(private readonly courtesyMs = COURTESY_MS) {}

  /** Adds a waiter at the end of the line for `key`. */
  join(key: string): Waiter {
    const waiter = new Waiter();
    this.line(key).waiters.push(waiter);
    return waiter;
  }

  /** Whether `waiter` is first in line. */
  isFirst(key: string, waiter: Waiter): boolean {
    return this.lines.get(key)?.waiters[0] === waiter;
  }

  /** Whether callers of this process wait for `key`. */
  hasWaiters(key: string): boolean {
    return (this.lines.get(key)?.waiters.length ?? 0) > 0;
  }

  /** Whether this process holds the lock. */
  isHeldHere(key: string): boolean {
    return (this.lines.get(key)?.holders ?? 0) > 0;
  }

  /** Removes `waiter`; the next one, if it became first, is woken. */
  leave(key: string, waiter: Waiter): void {
    const line = this.lines.get(key);
    if (!line) return;
    const index = line.waiters.indexOf(waiter);
    if (index === -1) return;
    line.waiters.splice(index, 1);
    if (index === 0) line.waiters[0]?.wake();
    this.dropIfIdle(key, line);
  }

  /** Records that this process now holds the lock. */
  acquired(key: string): void {
    this.line(key).holders++;
  }

  /** Records that an attempt of this process found the lock held by someone else. */
  contended(key: string): void {
    const line = this.lines.get(key);
    if (line) line.contended = true;
  }

  /**
   * Records that this process no longer holds the lock, and wakes the first waiter. After
   * a holding it had to wait for (contention), this process lets the others go first for a
   * moment (see `courtesyMs`).
   */
  released(key: string, fence = 0): void {
    const line = this.lines.get(key);
    if (!line) return;
    line.holders = Math.max(0, line.holders - 1);
    if (line.contended && this.courtesyMs > 0) {
      line.contended = false;
      if (this.courtesy.size > 1000) this.prune();
      this.courtesy.set(key, { until: performance.now() + this.courtesyMs, fence });
    }
    line.waiters[0]?.wake();
    this.dropIfIdle(key, line);
  }

  /** How long this process should still let other processes go first for `key` (0: none). */
  courtesyLeft(key: string): number {
    const until = this.courtesy.get(key)?.until;
    if (until === undefined) return 0;
    const left = until - performance.now();
    if (left <= 0) this.courtesy.delete(key);
    return Math.max(0, left);
  }

  /** The fence this process released `key` with when it started letting others go first. */
  releasedFence(key: string): number | undefined {
    return this.courtesy.get(key)?.fence;
  }

  /** Wakes the first waiter for `key` (another process may have released it): its turn has passed. */
  wake(key: string): void {
    this.courtesy.delete(key);
    this.lines.get(key)?.waiters[0]?.wake();
  }

  /** Wakes every waiter (shutdown). */
  wakeAll(): void {
    for (const line of this.lines.values()) for (const waiter of line.waiters) waiter.wake();
  }

  private line(key: string): Line {
    let line = this.lines.get(key);
    if (!line) {
      line = { waiters: [], holders: 0, contended: false };
      this.lines.set(key, line);
    }
    return line;
  }

  private prune(): void {
    const now = performance.now();
    for (const [key, { until }] of this.courtesy) if (until <= now) this.courtesy.delete(key);
  }

  private dropIfIdle(key: string, line: Line): void {
    if (line.waiters.length === 0 && line.holders === 0) this.lines.delete(key);
  }
}
