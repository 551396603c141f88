import type { DataSource, QueryRunner } from 'typeorm';
import type { LockOutcome } from '../interfaces/lock-state.interface';
import type { Doorbell } from '../waiting/doorbell.interface';

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
  /** After a release with a minimum hold: the lock stays taken until then. */
  holdUntilUs: number | null;
  /** The current (or last) holding's hold limit (`maxHoldMs`). */
  holdLimitUs: number | null;
  /** Start of the period (`oncePer`) whose run last took the lock. */
  lastTickAtUs: number | null;
  /** The database clock when the row was read. */
  nowUs: number;
}

/** A place in a lock's line of waiting processes (a row of the waiters table). */
export interface Place {
  /** The owner token the lock is granted with when this place's turn comes (the row's key). */
  token: string;
  /** When the place was taken (database clock, µs): the line is ordered by it, then by token. */
  queuedAtUs: number;
}

/** One acquisition attempt. */
export interface AcquireCommand {
  /** Primary key of the lock's row (see `lockKey()`). */
  key: string;
  name: string;
  /** The new owner token (a place's own token when `place` is set). */
  token: string;
  holder: string;
  ttlMs: number;
  /** Message stored as the `LeaseExpiredError` when this attempt takes over an expired lease. */
  leaseExpiredMessage: string;
  /** Message stored as the `HoldLimitExceededError` when it takes over a holding that reached its limit. */
  holdLimitMessage: string;
  /** The holding ends this long after the grant, renewed or not (null: no limit). */
  maxHoldMs: number | null;
  /** Grant only if no run of the current period of this length took the lock yet (null: any time). */
  oncePerMs: number | null;
  /**
   * The caller's place in line. Without one, a free lock is granted only when nobody waits
   * for it; with one, only when no live place is ahead of it (and the place is removed).
   */
  place: Place | null;
}

/** The answer to one attempt. */
export type AcquireResult = Granted | NotGranted;

/** A grant, as stored in the lock's row. */
export interface Granted {
  acquired: true;
  fence: number;
  acquiredAtUs: number;
  expiresAtUs: number;
  /** How the previous holding ended, as stored. */
  lastOutcome: LockOutcome | null;
  /** The previous holder's stored error (JSON). */
  lastError: string | null;
  /** The database clock when read, for a grant read after a hand-off (whose lease is shorter than asked). */
  nowUs?: number;
  /** When the holding must end (`maxHoldMs`), or null. */
  holdLimitUs: number | null;
}

/** An attempt that did not get the lock. */
export interface NotGranted {
  acquired: false;
  /** End of the current holder's lease, when known. */
  expiresAtUs: number | null;
  /** The database clock at the attempt, when known. */
  nowUs: number | null;
}

/** A new place in line. */
export interface EnqueueCommand {
  key: string;
  /** The owner token the lock will be granted with. */
  token: string;
  holder: string;
  ttlMs: number;
  /** The waiter's hold limit, applied by the hand-off (null: none). */
  maxHoldMs: number | null;
  /** The process the place belongs to (see `renewPlaces`), and whose doorbell a hand-off rings. */
  owner: string;
  /** How to ring this process's doorbell (dialect-specific address), or null. */
  doorbell: string | null;
  /** How long the place lasts unless renewed. */
  placeTtlMs: number;
}

/** A release; when processes wait, the same statement or transaction hands the lock to the first live place. */
export interface ReleaseCommand {
  key: string;
  token: string;
  /** `pass`: a waiter handed the lock after it gave up passes it on, keeping the stored outcome. */
  outcome: 'released' | 'error' | 'pass';
  error: string | null;
  /** Lease of the next holder until it renews (capped by its own ttl). */
  handoffLeaseMs: number;
  /** The releasing holding's minimum hold: the lock stays taken until this long after its grant (null: none). */
  minHoldMs: number | null;
}

/** What a release did. */
export interface ReleaseResult {
  /** False when the lock was no longer held with the token. */
  released: boolean;
  /** The process the lock was handed to, if any. */
  handedTo: string | null;
  /** Only when a minimum hold is left: the lock stays taken until then (µs, database clock). */
  holdUntilUs?: number;
  /**
   * When the database cannot ring the next holder itself (SQLite), its place's token and
   * doorbell address, for the releasing process to ring once the release has committed.
   */
  ring?: { token: string; doorbell: string };
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
  /**
   * The schema version of the lock tables (see `RLOCK_SCHEMA_VERSION`): 1 without a waiters
   * table; else the version its schema row stores, written as `current` when missing (a
   * table TypeORM synchronized). Called after `init()` found the lock table.
   */
  schemaVersion(current: number): Promise<number>;
  /** One atomic attempt: grants only a free or expired lock, and only in the line's order. */
  acquire(command: AcquireCommand): Promise<AcquireResult>;
  /**
   * Extends a live lease held with `token` (never past its hold limit); returns its new end,
   * or null when not held. `revive`: also a lease that ran out while still this token's (a
   * hand-off picked up late: nobody else held the lock in between).
   */
  extend(key: string, token: string, ttlMs: number, revive?: boolean): Promise<number | null>;
  /** Releases a lock held with `token`, recording its outcome and handing it to the next place in line. */
  release(command: ReleaseCommand): Promise<ReleaseResult>;
  /** The TypeORM data source of the lock store (transactional sections run their transaction on it). */
  readonly dataSource?: DataSource;
  /**
   * A transactional section, before its work: SQLite takes the write lock on the
   * transaction's connection (one writer at a time: the release at the end cannot then
   * fail on a snapshot another connection wrote after).
   */
  beginWithin?(runner: QueryRunner): Promise<void>;
  /**
   * `release()` inside a transactional section's open transaction (on `runner`, whose
   * caller commits it): the same release and hand-off, nothing committed here. `afterCommit`:
   * what wakes the next holder, to run once the caller committed.
   */
  releaseWithin?(
    runner: QueryRunner,
    command: ReleaseCommand,
  ): Promise<{ result: ReleaseResult; afterCommit?: () => void }>;
  /**
   * Frees a held lock whoever holds it, bumping its fence; with `fence`, only the holding
   * granted with that fence. False when nothing was released (free, or another holding).
   */
  forceRelease(key: string, error: string, fence?: number): Promise<boolean>;
  /** Reads one lock. */
  inspect(key: string): Promise<StoredLock | null>;
  /** Reads every lock, ordered by name. */
  list(): Promise<StoredLock[]>;
  /**
   * Deletes the rows of released locks (free: no token) unused for `olderThanMs` and nobody
   * waits for, never a row whose holder's lease ran out (the next holder must learn of it);
   * and deletes the places whose lease ran out. Returns how many lock rows it deleted.
   */
  purge(olderThanMs: number): Promise<number>;
  /** Takes a place at the end of a lock's line (and clears the line's dead places). */
  enqueue(command: EnqueueCommand): Promise<Place>;
  /** Gives a place up; false when it was gone already (handed the lock, or dead and cleared). */
  leaveLine(token: string): Promise<boolean>;
  /**
   * Extends every place of `owner` (and records its doorbell's address); returns the tokens
   * of the places it extended when fewer than `expected`, else their number.
   */
  renewPlaces(
    owner: string,
    placeTtlMs: number,
    doorbell: string | null,
    expected: number,
  ): Promise<string[] | number>;
  /** Reads the locks of `keys` (missing rows are left out), by key. */
  readLocks(keys: readonly string[]): Promise<Map<string, StoredLock>>;
  /**
   * From now on, renew leases on a connection of the dialect's own (opened when first
   * needed), so that renewals never wait behind lock attempts or a full pool.
   */
  useLeaseConnection?(): void;
  /** The doorbell of this database (how a release wakes a waiting process), if it has one. */
  createDoorbell?(): Doorbell | undefined;
  /** Health check: true when the lock table answers, false when it is missing; throws when the database does not answer. Opens nothing. */
  probe?(): Promise<boolean>;
  /** Closes what `init()` opened. */
  close(): Promise<void>;
}
