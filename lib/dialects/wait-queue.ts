/**
 * A database session of the wait queue's own that can wait for, hold and give up the
 * database's native named locks (PostgreSQL advisory locks, MySQL/MariaDB `GET_LOCK`).
 */
export interface QueueSession {
  /** Waits in the database's own queue until this session holds the native lock of `key`. */
  lock(key: string): Promise<void>;
  /** Gives the native lock of `key` up. */
  unlock(key: string): Promise<void>;
  /** Ends the session at once; a request still waiting is withdrawn with it. */
  destroy(): void;
}

/**
 * How long a just-released lock is kept for the process first in line: an attempt of a
 * process that is not in line fails meanwhile (it queues instead), so that a process
 * releasing and re-taking a lock in a loop cannot starve the line. Bounded, so that a
 * first-in-line process that hangs delays the others by at most this much per release.
 */
export const HANDOFF_RESERVE_MS = 100;

/** Where this process stands in the line of one lock. */
export type QueuePlace = 'queued' | 'first';

/** How many names one process queues for at once (one session each); beyond, waiters poll. */
const MAX_QUEUED_NAMES = 8;
/** Idle sessions kept for the next wait. */
const MAX_IDLE_SESSIONS = 2;
/** After this many session failures in a row (database down, native lock refused)… */
const MAX_FAILURES = 3;
/** …waiters poll for this long before the queue is tried again. */
const PAUSE_MS = 30_000;

interface Place<S> {
  session: S;
  state: QueuePlace;
}

/**
 * Orders the processes that wait for one lock with the database's native lock, so that a
 * release calls the next process in line instead of waking all of them:
 *
 * - a process whose attempt failed asks, on a session of its own, for the native lock
 *   derived from the lock's key; the database queues those requests in arrival order;
 * - the process holding the native lock is first in line: only it asks the lock table;
 * - it keeps the native lock while it holds the lock-table lock, and gives it up only
 *   after its release has committed, so the next process is called exactly when the
 *   row is free (the release is the doorbell: no polling, no wasted attempt).
 *
 * The native lock only orders attempts: every grant is still the lock table's single
 * conditional statement, so a failure here (a lost session, a full queue) only means
 * that process polls instead.
 */
export class WaitQueue<S extends QueueSession = QueueSession> {
  private readonly places = new Map<string, Place<S>>();
  private readonly idle: S[] = [];
  private readonly ended = new WeakSet<S>();
  private closed = false;
  private failures = 0;
  private pausedUntil = 0;

  constructor(
    /** Opens a session (connecting lazily); throws when it cannot. */
    private readonly openSession: (onFailure: (session: S) => void) => S,
    /** Called when this process becomes first in line for `key`, or lost its place. */
    private readonly onFirst: (key: string) => void,
  ) {}

  /** This process's place in the line of `key`, if it has one. */
  placeOf(key: string): QueuePlace | undefined {
    return this.places.get(key)?.state;
  }

  /** Puts this process in the line of `key` (if not there yet); false when it cannot. */
  enter(key: string): boolean {
    if (this.places.has(key)) return true;
    if (this.closed || this.places.size >= MAX_QUEUED_NAMES) return false;
    if (this.pausedUntil > performance.now()) return false;
    let session: S;
    try {
      session = this.idle.pop() ?? this.openSession((failed) => this.failed(failed));
    } catch {
      return false;
    }
    const place: Place<S> = { session, state: 'queued' };
    this.places.set(key, place);
    session.lock(key).then(
      () => {
        this.failures = 0;
        if (this.places.get(key) !== place) return this.release(session, key);
        place.state = 'first';
        this.onFirst(key);
      },
      () => this.failed(session),
    );
    return true;
  }

  /** Leaves the line of `key` (after a release has committed), calling the next process. */
  leave(key: string): void {
    const place = this.places.get(key);
    if (!place) return;
    this.places.delete(key);
    // A request still waiting cannot be withdrawn: ending its session withdraws it.
    if (place.state === 'queued') this.discard(place.session);
    else void this.release(place.session, key);
  }

  /**
   * Leaves the line of `key` through a release statement run on the session that holds
   * the native lock (first in line), the statement giving the native lock up itself: the
   * next process is then called while the release commits, one round trip sooner.
   * `gaveUp(result)` tells whether it did (a release that found the lock taken over does
   * not run it). Returns undefined, running nothing, when this process is not first in line.
   */
  leaveThrough<T>(
    key: string,
    statement: (session: S) => Promise<T>,
    gaveUp: (result: T) => boolean,
  ): Promise<T> | undefined {
    const place = this.places.get(key);
    if (place?.state !== 'first') return undefined;
    this.places.delete(key);
    const { session } = place;
    return statement(session).then(
      async (result) => {
        if (!gaveUp(result)) await this.release(session, key);
        else if (!this.closed && this.idle.length < MAX_IDLE_SESSIONS) this.idle.push(session);
        else session.destroy();
        return result;
      },
      (error: unknown) => {
        this.discard(session);
        throw error;
      },
    );
  }

  /** Ends every session (their native locks end with them). */
  close(): void {
    this.closed = true;
    const sessions = [...this.idle, ...[...this.places.values()].map((p) => p.session)];
    this.idle.length = 0;
    this.places.clear();
    for (const session of sessions) session.destroy();
  }

  private async release(session: S, key: string): Promise<void> {
    try {
      await session.unlock(key);
    } catch {
      this.discard(session);
      return;
    }
    if (!this.closed && this.idle.length < MAX_IDLE_SESSIONS) this.idle.push(session);
    else session.destroy();
  }

  /** A session failed: its places are lost (the database freed its native locks). */
  private failed(session: S): void {
    if (this.ended.has(session)) return;
    this.discard(session);
    if (++this.failures >= MAX_FAILURES) {
      this.failures = 0;
      this.pausedUntil = performance.now() + PAUSE_MS;
    }
    for (const [key, place] of this.places) {
      if (place.session !== session) continue;
      this.places.delete(key);
      // Wake the waiter: it tries again and queues anew.
      this.onFirst(key);
    }
  }

  private discard(session: S): void {
    const index = this.idle.indexOf(session);
    if (index !== -1) this.idle.splice(index, 1);
    this.ended.add(session);
    session.destroy();
  }
}
