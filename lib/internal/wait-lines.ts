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
}

/**
 * Per lock, the callers of this process waiting in arrival order. Only the first one
 * asks the database, and it does not while this process itself holds the lock: it is
 * woken when the lock is released here, or when another process may have released it.
 */
export class WaitLines {
  private readonly lines = new Map<string, Line>();

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

  /** Records that this process no longer holds the lock, and wakes the first waiter. */
  released(key: string): void {
    const line = this.lines.get(key);
    if (!line) return;
    line.holders = Math.max(0, line.holders - 1);
    line.waiters[0]?.wake();
    this.dropIfIdle(key, line);
  }

  /** Wakes the first waiter for `key` (another process may have released it). */
  wake(key: string): void {
    this.lines.get(key)?.waiters[0]?.wake();
  }

  /** Wakes every waiter (shutdown). */
  wakeAll(): void {
    for (const line of this.lines.values()) for (const waiter of line.waiters) waiter.wake();
  }

  private line(key: string): Line {
    let line = this.lines.get(key);
    if (!line) {
      line = { waiters: [], holders: 0 };
      this.lines.set(key, line);
    }
    return line;
  }

  private dropIfIdle(key: string, line: Line): void {
    if (line.waiters.length === 0 && line.holders === 0) this.lines.delete(key);
  }
}
