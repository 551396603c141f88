import type { LockOutcome } from '../interfaces/lock-state.interface';

/** A lock row as read from the table; instants in microseconds since the Unix epoch (database clock). */
export interface StoredLock {
  name: string;
  token: string | null;
  fence: number;
  holder: string | null;
  acquiredAtUs: number | null;
  expiresAtUs: number | null;
  releasedAtUs: number | null;
  lastOutcome: LockOutcome | null;
  lastError: string | null;
  /** The database clock when the row was read. */
  nowUs: number;
}

/** One acquisition attempt. */
export interface AcquireCommand {
  /** Primary key of the lock's row (see `lockKey()`). */
  key: string;
  name: string;
  /** The new owner token. */
  token: string;
  holder: string;
  ttlMs: number;
  /** Message stored as the `LeaseExpiredError` when this attempt takes over an expired lease. */
  leaseExpiredMessage: string;
  /** Check with a read before writing (set while waiting on a busy lock). */
  readFirst: boolean;
  /**
   * The database clock at this call's first failed attempt (null before it): how long the
   * caller has waited, for dialects that give a long waiter priority over newcomers.
   */
  waitingSinceUs: number | null;
}

/** The answer to one attempt. */
export type AcquireResult =
  | {
      acquired: true;
      fence: number;
      acquiredAtUs: number;
      expiresAtUs: number;
      /** How the previous holding ended, as stored. */
      lastOutcome: LockOutcome | null;
      /** The previous holder's stored error (JSON). */
      lastError: string | null;
    }
  | {
      acquired: false;
      /** End of the current holder's lease, when known. */
      expiresAtUs: number | null;
      /** The database clock at the attempt, when known. */
      nowUs: number | null;
    };

/** How a waiting process learns that a lock may have been freed (see `LockDialect.queue`). */
export type WakeUp = 'woken' | 'polls';

/** A release. */
export interface ReleaseCommand {
  key: string;
  token: string;
  outcome: 'released' | 'error';
  error: string | null;
}

/**
 * Everything nestjs-rlock asks of a database. One implementation per SQL dialect holds
 * all of that dialect's SQL; nothing above this interface knows which database it is.
 * Implementations throw the driver's errors unchanged; the service wraps them.
 */
export interface LockDialect {
  /** A human name of the database, for messages. */
  readonly database: string;
  /** Prepares connections and checks that the lock table exists (false when missing). */
  init(): Promise<boolean>;
  /** One atomic attempt: grants only a free or expired lock. */
  acquire(command: AcquireCommand): Promise<AcquireResult>;
  /** Extends a live lease held with `token`; returns its new end, or null when not held. */
  extend(key: string, token: string, ttlMs: number): Promise<number | null>;
  /** Releases a lock held with `token`, recording its outcome; false when not held. */
  release(command: ReleaseCommand): Promise<boolean>;
  /** Frees a held lock whoever holds it, bumping its fence; false when it was free. */
  forceRelease(key: string, error: string): Promise<boolean>;
  /** Reads one lock. */
  inspect(key: string): Promise<StoredLock | null>;
  /** Reads every lock, ordered by name. */
  list(): Promise<StoredLock[]>;
  /** Deletes rows of free locks unused for `olderThanMs`; returns how many. */
  purge(olderThanMs: number): Promise<number>;
  /** Calls `listener` with a lock's key when another process may have released it (or this process's turn in line came). */
  onRelease?(listener: (key: string) => void): void;
  /**
   * This process waits for `key` (an attempt failed, or it lets the others go first): the
   * dialect may put it in line, so that a release calls one process instead of waking all.
   * `'woken'`: a release (or its turn in line) will wake this process through `onRelease`,
   * so it polls only as a fallback; `'polls'`: nothing will, it polls with the backoff.
   */
  queue?(key: string): WakeUp;
  /**
   * This process neither waits for nor holds `key` any more: it gives its place in line up,
   * calling the next process. Called after a release has committed.
   */
  dequeue?(key: string): void;
  /** Health check: true when the lock table answers, false when it is missing; throws when the database does not answer. Opens nothing. */
  probe?(): Promise<boolean>;
  /** Closes what `init()` opened. */
  close(): Promise<void>;
}
