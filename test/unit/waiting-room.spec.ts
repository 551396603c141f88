import { performance } from 'node:perf_hooks';
import type {
  AcquireCommand,
  AcquireResult,
  EnqueueCommand,
  Granted,
  LockDialect,
  NotGranted,
  Place,
  ReleaseCommand,
  ReleaseResult,
  StoredLock,
} from '../../lib/dialects/dialect.interface';
import { AcquireTimeoutError, LockDatabaseError, ShuttingDownError } from '../../lib/errors';
import type { LockOutcome } from '../../lib/interfaces/lock-state.interface';
import type { Doorbell } from '../../lib/waiting/doorbell.interface';
import { WaitingRoom, type LockGranting, type WaitRequest } from '../../lib/waiting/waiting-room';
import {
  HANDOFF_LEASE_MS,
  PLACE_RENEW_MS,
  PLACE_TTL_MS,
} from '../../lib/waiting/waiting.constants';

// ---------------------------------------------------------------------------------------
// An in-memory lock database that behaves as the SQL dialects do: a row per lock, and a
// line of places per lock ordered by (queuedAtUs, token), each with a lease. Instants come
// from the (fake) wall clock, in microseconds.
// ---------------------------------------------------------------------------------------

interface LockRow {
  name: string;
  token: string | null;
  fence: number;
  holder: string | null;
  acquiredAtUs: number | null;
  expiresAtUs: number | null;
  releasedAtUs: number | null;
  lastOutcome: LockOutcome | null;
  lastError: string | null;
  // Columns of hold limits, minimum holds and periodic runs: none here (always null).
  holdUntilUs: null;
  holdLimitUs: null;
  lastTickAtUs: null;
}

interface PlaceRow {
  key: string;
  token: string;
  holder: string;
  ttlMs: number;
  owner: string;
  doorbell: string | null;
  queuedAtUs: number;
  expiresAtUs: number;
}

type Statement = 'acquire' | 'release' | 'enqueue' | 'leaveLine' | 'renewPlaces' | 'readLocks';

/** Holds one call of a statement up: before it runs, or after it ran (its answer delayed). */
interface Gate {
  when: 'before' | 'after';
  /** Resolves once the call arrived (and, for `after`, ran). */
  reached: Promise<void>;
  arrive(): void;
  open(): void;
  opened: Promise<void>;
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

class FakeDatabase implements LockDialect {
  readonly database = 'fake';
  readonly locks = new Map<string, LockRow>();
  /** Places by token. */
  readonly places = new Map<string, PlaceRow>();
  /** The most places one owner ever had at once in one lock's line, by `${owner} ${key}`. */
  readonly mostPlaces = new Map<string, number>();
  private readonly gates = new Map<Statement, Gate[]>();

  nowUs(): number {
    return Date.now() * 1000;
  }

  /** The next call of `statement` waits for `open()`, before it runs or before it answers. */
  pause(statement: Statement, when: 'before' | 'after' = 'before'): Gate {
    const reached = deferred();
    const opened = deferred();
    const gate: Gate = {
      when,
      reached: reached.promise,
      arrive: reached.resolve,
      open: opened.resolve,
      opened: opened.promise,
    };
    this.gates.set(statement, [...(this.gates.get(statement) ?? []), gate]);
    return gate;
  }

  private async run<T>(statement: Statement, execute: () => T): Promise<T> {
    const gate = this.gates.get(statement)?.shift();
    if (!gate) return execute();
    if (gate.when === 'before') {
      gate.arrive();
      await gate.opened;
      return execute();
    }
    const result = execute();
    gate.arrive();
    await gate.opened;
    return result;
  }

  /** The live places of a lock's line, in its order. */
  line(key: string): PlaceRow[] {
    const now = this.nowUs();
    return [...this.places.values()]
      .filter((place) => place.key === key && place.expiresAtUs > now)
      .sort((a, b) =>
        a.queuedAtUs !== b.queuedAtUs
          ? a.queuedAtUs - b.queuedAtUs
          : a.token < b.token
            ? -1
            : a.token > b.token
              ? 1
              : 0,
      );
  }

  placesOf(owner: string, key?: string): PlaceRow[] {
    return [...this.places.values()].filter(
      (place) => place.owner === owner && (key === undefined || place.key === key),
    );
  }

  private placeAhead(key: string, place: Place | null): boolean {
    return this.line(key).some(
      (other) =>
        place === null ||
        other.queuedAtUs < place.queuedAtUs ||
        (other.queuedAtUs === place.queuedAtUs && other.token < place.token),
    );
  }

  // --- what other processes do, at once ---

  /** Another process takes the lock as a newcomer (or the test sets it up so). */
  take(key: string, token: string, ttlMs: number): void {
    const now = this.nowUs();
    const row = this.locks.get(key) ?? this.newRow(key);
    this.locks.set(key, {
      ...row,
      token,
      holder: `holder-${token}`,
      fence: row.fence + 1,
      acquiredAtUs: now,
      expiresAtUs: now + ttlMs * 1000,
    });
  }

  /** Another process releases the lock it holds: the lock goes to the first live place. */
  releaseBy(
    key: string,
    token: string,
    outcome: 'released' | 'error' = 'released',
    error: string | null = null,
  ): ReleaseResult {
    const command = {
      key,
      token,
      outcome,
      error,
      handoffLeaseMs: HANDOFF_LEASE_MS,
      minHoldMs: null,
    };
    return this.releaseNow(command);
  }

  /** Another process takes a place in the lock's line. */
  enqueueOther(key: string, token: string, owner: string): Place {
    const command = {
      key,
      token,
      holder: `holder-${token}`,
      ttlMs: 10_000,
      maxHoldMs: null,
      owner,
      doorbell: null,
      placeTtlMs: 3_600_000,
    };
    return this.enqueueNow(command);
  }

  private newRow(key: string): LockRow {
    return {
      name: key.replace(/^key:/, ''),
      token: null,
      fence: 0,
      holder: null,
      acquiredAtUs: null,
      expiresAtUs: null,
      releasedAtUs: null,
      lastOutcome: null,
      lastError: null,
      holdUntilUs: null,
      holdLimitUs: null,
      lastTickAtUs: null,
    };
  }

  // --- LockDialect ---

  async init(): Promise<boolean> {
    return true;
  }

  async schemaVersion(current: number): Promise<number> {
    return current;
  }

  acquire(c: AcquireCommand): Promise<AcquireResult> {
    return this.run('acquire', () => this.acquireNow(c));
  }

  private acquireNow(c: AcquireCommand): AcquireResult {
    const now = this.nowUs();
    const row = this.locks.get(c.key) ?? this.newRow(c.key);
    const held = row.token !== null && row.expiresAtUs! > now;
    if (held || this.placeAhead(c.key, c.place)) {
      const notGranted: NotGranted = {
        acquired: false,
        expiresAtUs: held ? row.expiresAtUs : null,
        nowUs: now,
      };
      return notGranted;
    }
    const takenOver = row.token !== null;
    const next: LockRow = {
      ...row,
      lastOutcome: takenOver ? 'expired' : row.lastOutcome,
      lastError: takenOver
        ? JSON.stringify({ type: 'LeaseExpiredError', message: c.leaseExpiredMessage })
        : row.lastError,
      token: c.token,
      holder: c.holder,
      fence: row.fence + 1,
      acquiredAtUs: now,
      expiresAtUs: now + c.ttlMs * 1000,
    };
    this.locks.set(c.key, next);
    if (c.place !== null) this.places.delete(c.token);
    const granted = {
      acquired: true as const,
      fence: next.fence,
      acquiredAtUs: now,
      expiresAtUs: next.expiresAtUs!,
      lastOutcome: next.lastOutcome,
      lastError: next.lastError,
      holdLimitUs: null,
    };
    return granted;
  }

  async extend(key: string, token: string, ttlMs: number): Promise<number | null> {
    const row = this.locks.get(key);
    if (row?.token !== token || row.expiresAtUs! <= this.nowUs()) return null;
    row.expiresAtUs = this.nowUs() + ttlMs * 1000;
    return row.expiresAtUs;
  }

  release(c: ReleaseCommand): Promise<ReleaseResult> {
    return this.run('release', () => this.releaseNow(c));
  }

  /** The release and the hand-off to the first live place, at once (as one transaction). */
  private releaseNow(c: ReleaseCommand): ReleaseResult {
    const row = this.locks.get(c.key);
    if (row?.token !== c.token) return { released: false, handedTo: null };
    const now = this.nowUs();
    // `pass`: a lock nobody used goes on with the outcome stored before.
    if (c.outcome !== 'pass') {
      row.lastOutcome = c.outcome;
      row.lastError = c.error;
    }
    row.releasedAtUs = now;
    const next = this.line(c.key)[0];
    if (next === undefined) {
      row.token = null;
      return { released: true, handedTo: null };
    }
    row.token = next.token;
    row.holder = next.holder;
    row.fence += 1;
    row.acquiredAtUs = now;
    row.expiresAtUs = now + Math.min(next.ttlMs, c.handoffLeaseMs) * 1000;
    this.places.delete(next.token);
    return {
      released: true,
      handedTo: next.owner,
      ring: next.doorbell === null ? undefined : { token: next.token, doorbell: next.doorbell },
    };
  }

  async forceRelease(key: string, error: string): Promise<boolean> {
    const row = this.locks.get(key);
    if (row?.token == null) return false;
    Object.assign(row, { token: null, fence: row.fence + 1, lastOutcome: 'force-released' });
    row.lastError = error;
    return true;
  }

  async inspect(key: string): Promise<StoredLock | null> {
    const row = this.locks.get(key);
    return row === undefined ? null : { ...row, nowUs: this.nowUs() };
  }

  async list(): Promise<StoredLock[]> {
    return [...this.locks.values()].map((row) => ({ ...row, nowUs: this.nowUs() }));
  }

  async purge(): Promise<number> {
    return 0;
  }

  enqueue(c: EnqueueCommand): Promise<Place> {
    return this.run('enqueue', () => this.enqueueNow(c));
  }

  private enqueueNow(c: EnqueueCommand): Place {
    const now = this.nowUs();
    // Clears the line's dead places, and queues strictly after the last one.
    for (const place of [...this.places.values()]) {
      if (place.key === c.key && place.expiresAtUs <= now) this.places.delete(place.token);
    }
    const last = Math.max(
      0,
      ...[...this.places.values()].filter((p) => p.key === c.key).map((p) => p.queuedAtUs + 1),
    );
    const queuedAtUs = Math.max(now, last);
    this.places.set(c.token, {
      key: c.key,
      token: c.token,
      holder: c.holder,
      ttlMs: c.ttlMs,
      owner: c.owner,
      doorbell: c.doorbell,
      queuedAtUs,
      expiresAtUs: now + c.placeTtlMs * 1000,
    });
    const id = `${c.owner} ${c.key}`;
    const count = this.placesOf(c.owner, c.key).length;
    this.mostPlaces.set(id, Math.max(this.mostPlaces.get(id) ?? 0, count));
    return { token: c.token, queuedAtUs };
  }

  leaveLine(token: string): Promise<boolean> {
    return this.run('leaveLine', () => this.places.delete(token));
  }

  renewPlaces(
    owner: string,
    placeTtlMs: number,
    doorbell: string | null,
    expected: number,
  ): Promise<string[] | number> {
    return this.run('renewPlaces', () => {
      const renewed = this.placesOf(owner);
      for (const place of renewed) {
        place.expiresAtUs = this.nowUs() + placeTtlMs * 1000;
        place.doorbell = doorbell;
      }
      return renewed.length < expected ? renewed.map((place) => place.token) : renewed.length;
    });
  }

  readLocks(keys: readonly string[]): Promise<Map<string, StoredLock>> {
    return this.run('readLocks', () => {
      const rows = new Map<string, StoredLock>();
      for (const key of keys) {
        const row = this.locks.get(key);
        if (row) rows.set(key, { ...row, nowUs: this.nowUs() });
      }
      return rows;
    });
  }

  async close(): Promise<void> {}
}

// ---------------------------------------------------------------------------------------
// The granting side, built like RLockService's: attempts through the dialect, locks made
// from attempts or hand-offs, pass-on by a release with the outcome `pass`.
// ---------------------------------------------------------------------------------------

interface FakeLock {
  key: string;
  name: string;
  token: string;
  fence: number;
  lastOutcome: LockOutcome | null;
  lastError: string | null;
  /** How the lock was granted: by the line's own attempt, or handed over by a release. */
  via: 'attempt' | 'handover';
  request: WaitRequest;
}

class FakeGranting implements LockGranting<FakeLock> {
  room!: WaitingRoom<FakeLock>;
  readonly attempts: Array<{ request: WaitRequest; token: string; place: Place | null }> = [];
  readonly handOvers: Array<{ request: WaitRequest; token: string; grant: Granted }> = [];
  readonly passOns: Array<{ key: string; token: string; lock: FakeLock | undefined }> = [];
  readonly timeouts: WaitRequest[] = [];
  private readonly held = new Map<string, Set<FakeLock>>();

  constructor(
    private readonly db: FakeDatabase,
    private readonly owner: string,
  ) {}

  async attempt(
    request: WaitRequest,
    token: string,
    place: Place | null,
  ): Promise<FakeLock | NotGranted> {
    this.attempts.push({ request, token, place });
    // No hold limit, no periodic runs: those options play no part in waiting.
    const command = {
      key: request.key,
      name: request.name,
      token,
      holder: 'here',
      ttlMs: request.ttlMs,
      leaseExpiredMessage: 'The lease expired.',
      holdLimitMessage: 'The hold limit was reached.',
      maxHoldMs: null,
      oncePerMs: null,
      place,
    };
    let result: AcquireResult;
    try {
      result = await this.db.acquire(command);
    } catch (error) {
      throw new LockDatabaseError('acquire failed', error);
    }
    if (!result.acquired) return result;
    return this.toLock(request, token, result, 'attempt');
  }

  handedOver(request: WaitRequest, token: string, grant: Granted): FakeLock {
    this.handOvers.push({ request, token, grant });
    return this.toLock(request, token, grant, 'handover');
  }

  async passOn(key: string, token: string, lock?: FakeLock): Promise<void> {
    this.passOns.push({ key, token, lock });
    if (lock) this.unhold(lock);
    await this.releaseToken(key, token, 'pass');
  }

  timedOut(request: WaitRequest): void {
    this.timeouts.push(request);
  }

  heldHere(key: string): boolean {
    return (this.held.get(key)?.size ?? 0) > 0;
  }

  /** The holder here releases its lock (as RemoteLock.unlock does through the service). */
  async release(lock: FakeLock, outcome: 'released' | 'error' = 'released'): Promise<boolean> {
    this.unhold(lock);
    return this.releaseToken(lock.key, lock.token, outcome);
  }

  private async releaseToken(
    key: string,
    token: string,
    outcome: 'released' | 'error' | 'pass',
  ): Promise<boolean> {
    const leaving = this.room.settled(key);
    if (leaving) await leaving;
    const command = {
      key,
      token,
      outcome,
      error: null,
      handoffLeaseMs: HANDOFF_LEASE_MS,
      minHoldMs: null,
    };
    const result = await this.db.release(command);
    if (result.handedTo === this.owner) this.room.handedHere(key);
    else if (result.ring) this.room.ring(result.ring.doorbell, result.ring.token);
    return result.released;
  }

  private toLock(
    request: WaitRequest,
    token: string,
    grant: Granted,
    via: FakeLock['via'],
  ): FakeLock {
    const lock: FakeLock = {
      key: request.key,
      name: request.name,
      token,
      fence: grant.fence,
      lastOutcome: grant.lastOutcome,
      lastError: grant.lastError,
      via,
      request,
    };
    let locks = this.held.get(lock.key);
    if (!locks) this.held.set(lock.key, (locks = new Set()));
    locks.add(lock);
    return lock;
  }

  private unhold(lock: FakeLock): void {
    this.held.get(lock.key)?.delete(lock);
  }
}

/** A doorbell whose rings the test makes by hand. */
class FakeDoorbell implements Doorbell {
  readonly address = 'bell-of-p1';
  ringing = true;
  opens = 0;
  closes = 0;
  readonly rangAt: Array<{ address: string; token: string }> = [];
  private onRing: ((token?: string) => void) | undefined;
  private onConnected: (() => void) | undefined;

  open(_owner: string, ring: (token?: string) => void, connected: () => void): void {
    this.opens += 1;
    this.onRing = ring;
    this.onConnected = connected;
  }

  async close(): Promise<void> {
    this.closes += 1;
  }

  ringAt(address: string, token: string): void {
    this.rangAt.push({ address, token });
  }

  /** A release handed this process a lock (the place's token, when the database says). */
  ring(token?: string): void {
    this.onRing?.(token);
  }

  connected(): void {
    this.onConnected?.();
  }
}

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

const OWNER = 'p1';
const START = Date.UTC(2030, 0, 1);
/** How far the monotonic clock lags behind the timers (a timer that fires early). */
let lagMs = 0;

/** Runs every pending promise callback (the fake database answers in microtasks). */
async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** Moves the fake clock on, running the timers due and the promise callbacks they cause. */
async function advance(ms: number): Promise<void> {
  await jest.advanceTimersByTimeAsync(ms);
  await flush();
}

interface Tracked<T> {
  promise: Promise<T>;
  state: 'pending' | 'resolved' | 'rejected';
  value: T | undefined;
  error: unknown;
}

function track<T>(promise: Promise<T>): Tracked<T> {
  const tracked: Tracked<T> = { promise, state: 'pending', value: undefined, error: undefined };
  promise.then(
    (value) => Object.assign(tracked, { state: 'resolved', value }),
    (error: unknown) => Object.assign(tracked, { state: 'rejected', error }),
  );
  return tracked;
}

interface Setup {
  db: FakeDatabase;
  granting: FakeGranting;
  room: WaitingRoom<FakeLock>;
  bell: FakeDoorbell | undefined;
  wait(
    name: string,
    options?: { timeoutMs?: number; signal?: AbortSignal; ttlMs?: number },
  ): Tracked<FakeLock>;
  /** The token of this process's place in the line of `name` (there must be exactly one). */
  place(name: string): string;
  close(): Promise<void>;
}

function setUp(options: { doorbell?: boolean } = {}): Setup {
  const db = new FakeDatabase();
  const granting = new FakeGranting(db, OWNER);
  const bell = options.doorbell === false ? undefined : new FakeDoorbell();
  const room = new WaitingRoom<FakeLock>(
    db,
    granting,
    { owner: OWNER, holder: 'here', backoffMinMs: 10, backoffMaxMs: 100 },
    bell,
  );
  granting.room = room;
  return {
    db,
    granting,
    room,
    bell,
    wait(name, { timeoutMs = 30_000, signal, ttlMs = 10_000 } = {}) {
      const now = performance.now();
      return track(
        room.wait({
          name,
          key: `key:${name}`,
          ttlMs,
          minHoldMs: null,
          maxHoldMs: null,
          oncePerMs: null,
          timeoutMs,
          deadline: now + timeoutMs,
          signal,
          startedAt: now,
        }),
      );
    },
    place(name) {
      const places = db.placesOf(OWNER, `key:${name}`);
      expect(places).toHaveLength(1);
      return places[0].token;
    },
    async close() {
      const closing = room.close();
      await advance(50);
      await closing;
    },
  };
}

beforeEach(() => {
  jest.useFakeTimers({ now: START, doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
  lagMs = 0;
  // The room reads the monotonic clock of perf_hooks, which jest's fake timers leave alone.
  jest.spyOn(performance, 'now').mockImplementation(() => Date.now() - START - lagMs);
});

afterEach(() => {
  jest.useRealTimers();
  jest.restoreAllMocks();
});

// ---------------------------------------------------------------------------------------

describe('WaitingRoom', () => {
  describe('local waiters of one process', () => {
    it('takes one place in the lock’s line for all of its waiters', async () => {
      const { db, wait } = setUp();
      const enqueue = jest.spyOn(db, 'enqueue');
      db.take('key:a', 'other', 60_000);

      const waiters = [wait('a'), wait('a'), wait('a'), wait('a'), wait('a')];
      await flush();

      expect(enqueue).toHaveBeenCalledTimes(1);
      expect(db.placesOf(OWNER, 'key:a')).toHaveLength(1);
      expect(waiters.map((w) => w.state)).toEqual(Array(5).fill('pending'));
    });

    it('serves its waiters in their order of arrival, one place at a time', async () => {
      const { db, granting, bell, wait, place } = setUp();
      const enqueue = jest.spyOn(db, 'enqueue');
      db.take('key:a', 'other', 60_000);
      const [first, second, third] = [wait('a'), wait('a'), wait('a')];
      await flush();

      const handOff = db.releaseBy('key:a', 'other');
      expect(handOff.handedTo).toBe(OWNER);
      bell!.ring(handOff.ring!.token);
      await flush();
      expect([first.state, second.state, third.state]).toEqual(['resolved', 'pending', 'pending']);
      // The next waiter takes a new place; the holder here will hand the lock to it.
      place('a');

      await granting.release(first.value!);
      await flush();
      expect([second.state, third.state]).toEqual(['resolved', 'pending']);

      await granting.release(second.value!);
      await flush();
      expect(third.state).toBe('resolved');

      expect([first, second, third].map((w) => w.value!.fence)).toEqual([2, 3, 4]);
      expect([first, second, third].map((w) => w.value!.via)).toEqual([
        'handover',
        'handover',
        'handover',
      ]);
      expect(enqueue).toHaveBeenCalledTimes(3);
      expect(db.mostPlaces.get(`${OWNER} key:a`)).toBe(1);
      expect(db.places.size).toBe(0);
    });

    it('joins its own line without an attempt while the lock is held here', async () => {
      const { db, granting, wait } = setUp();
      db.take('key:a', 'other', 60_000);
      const first = wait('a');
      await flush();
      db.releaseBy('key:a', 'other');
      await advance(PLACE_RENEW_MS); // the renewal tick's read finds the hand-off
      expect(first.state).toBe('resolved');

      const attempts = granting.attempts.length;
      const second = wait('a');
      await flush();
      expect(granting.attempts).toHaveLength(attempts);
      expect(db.line('key:a')).toHaveLength(1);

      await granting.release(first.value!);
      await flush();
      expect(second.state).toBe('resolved');
      expect(second.value!.via).toBe('handover');
    });
  });

  describe('deadlines', () => {
    it('rejects a waiter with AcquireTimeoutError at its deadline, not before', async () => {
      const { db, granting, wait } = setUp();
      db.take('key:a', 'other', 60_000);
      const waiter = wait('a', { timeoutMs: 500 });
      await flush();

      await advance(499);
      expect(waiter.state).toBe('pending');
      await advance(1);
      expect(waiter.state).toBe('rejected');
      expect(waiter.error).toBeInstanceOf(AcquireTimeoutError);
      expect(waiter.error).toMatchObject({ lockName: 'a', timeoutMs: 500 });
      expect(granting.timeouts.map((request) => request.name)).toEqual(['a']);
    });

    it('never gives up before its deadline by the monotonic clock, even if its timer fires early', async () => {
      const { db, wait } = setUp();
      db.take('key:a', 'other', 60_000);
      const waiter = wait('a', { timeoutMs: 500 });
      await flush();
      lagMs = 3; // from now on, timers fire 3 ms early by performance.now()

      await advance(500);
      expect(waiter.state).toBe('pending');
      await advance(3);
      expect(waiter.error).toBeInstanceOf(AcquireTimeoutError);
    });

    it('gives the place up when its last waiter times out', async () => {
      const { db, wait, place } = setUp();
      const leaveLine = jest.spyOn(db, 'leaveLine');
      db.take('key:a', 'other', 60_000);
      const waiter = wait('a', { timeoutMs: 500 });
      await flush();
      const token = place('a');

      await advance(500);
      expect(waiter.error).toBeInstanceOf(AcquireTimeoutError);
      expect(leaveLine).toHaveBeenCalledTimes(1);
      expect(leaveLine).toHaveBeenCalledWith(token);
      expect(db.places.size).toBe(0);
    });

    it('keeps the place for the waiters still in line when one times out', async () => {
      const { db, bell, wait, place } = setUp();
      const leaveLine = jest.spyOn(db, 'leaveLine');
      db.take('key:a', 'other', 60_000);
      const early = wait('a', { timeoutMs: 500 });
      const patient = wait('a', { timeoutMs: 30_000 });
      await flush();
      const token = place('a');

      await advance(500);
      expect(early.error).toBeInstanceOf(AcquireTimeoutError);
      expect(leaveLine).not.toHaveBeenCalled();
      expect(place('a')).toBe(token);

      bell!.ring(db.releaseBy('key:a', 'other').ring!.token);
      await flush();
      expect(patient.state).toBe('resolved');
      expect(patient.value!.token).toBe(token);
    });
  });

  describe('aborts', () => {
    it('settles the call at once with the reason of its signal, and gives the place up', async () => {
      const { db, wait } = setUp();
      const leaveLine = jest.spyOn(db, 'leaveLine');
      db.take('key:a', 'other', 60_000);
      const controller = new AbortController();
      const waiter = wait('a', { signal: controller.signal });
      await flush();

      const reason = new Error('not any more');
      controller.abort(reason);
      await expect(waiter.promise).rejects.toBe(reason);
      await flush();
      expect(leaveLine).toHaveBeenCalledTimes(1);
      expect(db.places.size).toBe(0);
    });

    it('rejects with the reason of a signal aborted already, taking no place', async () => {
      const { db, wait } = setUp();
      const enqueue = jest.spyOn(db, 'enqueue');
      const reason = new Error('aborted before');
      const waiter = wait('a', { signal: AbortSignal.abort(reason) });
      await expect(waiter.promise).rejects.toBe(reason);
      await flush();
      expect(enqueue).not.toHaveBeenCalled();
    });

    it('gives up a place that was being taken when the call was aborted', async () => {
      const { db, wait } = setUp();
      db.take('key:a', 'other', 60_000);
      const gate = db.pause('enqueue');
      const controller = new AbortController();
      const waiter = wait('a', { signal: controller.signal });
      await gate.reached;

      controller.abort(new Error('gone'));
      await flush();
      expect(waiter.state).toBe('rejected');
      gate.open();
      await flush();
      expect(db.places.size).toBe(0);
    });

    it('keeps the others in line, in their order, when one is aborted', async () => {
      const { db, bell, wait } = setUp();
      db.take('key:a', 'other', 60_000);
      const controller = new AbortController();
      const first = wait('a');
      const aborted = wait('a', { signal: controller.signal });
      const third = wait('a');
      await flush();

      controller.abort(new Error('gone'));
      await flush();
      expect(aborted.state).toBe('rejected');
      bell!.ring(db.releaseBy('key:a', 'other').ring!.token);
      await flush();
      expect([first.state, third.state]).toEqual(['resolved', 'pending']);
    });
  });

  describe('grants', () => {
    it('gives a hand-off found after a ring to the head of the line, with the stored outcome', async () => {
      const { db, granting, bell, wait, place } = setUp();
      const readLocks = jest.spyOn(db, 'readLocks');
      db.take('key:a', 'other', 60_000);
      const head = wait('a');
      const next = wait('a');
      await flush();
      const token = place('a');

      const handOff = db.releaseBy('key:a', 'other', 'error', '{"message":"boom"}');
      expect(handOff.ring).toEqual({ token, doorbell: 'bell-of-p1' });
      bell!.ring(token);
      await flush();

      expect(readLocks).toHaveBeenCalledWith(['key:a']);
      expect(head.state).toBe('resolved');
      expect(next.state).toBe('pending');
      expect(head.value).toMatchObject({
        token,
        fence: 2,
        via: 'handover',
        lastOutcome: 'error',
        lastError: '{"message":"boom"}',
      });
      expect(granting.handOvers).toHaveLength(1);
      expect(granting.handOvers[0].request).toBe(head.value!.request);
    });

    it('finds a hand-off whose ring was lost at the renewal tick', async () => {
      const { db, wait } = setUp();
      db.take('key:a', 'other', 60_000);
      const waiter = wait('a');
      await flush();
      db.releaseBy('key:a', 'other');

      await advance(PLACE_RENEW_MS - 1);
      expect(waiter.state).toBe('pending');
      await advance(1);
      expect(waiter.state).toBe('resolved');
      expect(waiter.value!.via).toBe('handover');
    });

    it('without a doorbell, polls with a backoff and finds a hand-off before the renewal tick', async () => {
      const { db, wait } = setUp({ doorbell: false });
      const readLocks = jest.spyOn(db, 'readLocks');
      db.take('key:a', 'other', 60_000);
      const waiter = wait('a');
      await flush();
      expect(readLocks).not.toHaveBeenCalled();
      db.releaseBy('key:a', 'other');

      await advance(10); // backoffMinMs
      expect(waiter.state).toBe('resolved');
      expect(waiter.value!.via).toBe('handover');
    });

    it('takes a lock freed before its place was visible with the line’s first attempt', async () => {
      const { db, granting, wait } = setUp();
      const leaveLine = jest.spyOn(db, 'leaveLine');
      const waiter = wait('a');
      await flush();

      expect(waiter.state).toBe('resolved');
      expect(waiter.value!.via).toBe('attempt');
      expect(granting.attempts).toHaveLength(1);
      expect(granting.attempts[0].place).not.toBeNull();
      expect(db.places.size).toBe(0);
      expect(leaveLine).not.toHaveBeenCalled();
    });

    it('tries again when the holder’s lease ends, and takes the lock over', async () => {
      const { db, wait } = setUp();
      db.take('key:a', 'dying', 5_000);
      const waiter = wait('a');
      await flush();

      await advance(5_001);
      expect(waiter.state).toBe('resolved');
      expect(waiter.value).toMatchObject({ via: 'attempt', lastOutcome: 'expired' });
    });

    it('passes a hand-off on once when the last waiter gave up before it was found (leaveLine returns false)', async () => {
      const { db, granting, bell, wait, place } = setUp();
      db.take('key:a', 'other', 60_000);
      const waiter = wait('a', { timeoutMs: 500 });
      await flush();
      const token = place('a');
      db.enqueueOther('key:a', 'behind', 'p2');
      // Handed over; the ring is not heard before the deadline.
      db.releaseBy('key:a', 'other', 'error', '{"message":"boom"}');

      await advance(500);
      expect(waiter.error).toBeInstanceOf(AcquireTimeoutError);
      expect(granting.passOns).toEqual([{ key: 'key:a', token, lock: undefined }]);

      // A late ring, the renewal ticks: nothing is passed on twice.
      bell!.ring(token);
      await advance(3 * PLACE_RENEW_MS);
      expect(granting.passOns).toHaveLength(1);
      expect(granting.handOvers).toHaveLength(0);
    });

    it('passes a hand-off on once when the last waiter gives up while a check reads it', async () => {
      const { db, granting, bell, wait, place } = setUp();
      db.take('key:a', 'other', 60_000);
      const controller = new AbortController();
      const waiter = wait('a', { signal: controller.signal });
      await flush();
      const token = place('a');
      db.releaseBy('key:a', 'other');

      const read = db.pause('readLocks', 'after');
      bell!.ring(token);
      await read.reached; // the check saw the lock handed to the place
      controller.abort(new Error('gone'));
      await flush();
      read.open();
      await flush();

      expect(waiter.state).toBe('rejected');
      expect(granting.handOvers).toHaveLength(0);
      expect(granting.passOns).toEqual([{ key: 'key:a', token, lock: undefined }]);
      await advance(3 * PLACE_RENEW_MS);
      expect(granting.passOns).toHaveLength(1);
    });

    it('gives up the place of a caller that came just as the previous place was being given up', async () => {
      const { db, granting, room, wait } = setUp();
      db.take('key:a', 'other', 60_000);
      const first = wait('a', { timeoutMs: 500 });
      await flush();
      // Another caller comes as soon as the first gives up (a retry in its error handler).
      let second: Tracked<FakeLock> | undefined;
      first.promise.catch(() => (second = wait('a', { timeoutMs: 500 })));
      await advance(500);
      expect(first.error).toBeInstanceOf(AcquireTimeoutError);
      expect(db.placesOf(OWNER, 'key:a')).toHaveLength(1);

      await advance(500);
      expect(second!.error).toBeInstanceOf(AcquireTimeoutError);
      // Nobody here waits: no place of this process is left for a release to hand the lock to.
      expect(db.placesOf(OWNER, 'key:a')).toHaveLength(0);
      expect(room.hasLine('key:a')).toBe(false);
      db.releaseBy('key:a', 'other', 'error', '{"message":"boom"}');
      expect(db.locks.get('key:a')).toMatchObject({ token: null, lastOutcome: 'error' });
      expect(granting.passOns).toHaveLength(0);
    });

    it('passes a lock on once when the line’s attempt is granted after its last waiter gave up', async () => {
      const { db, granting, wait } = setUp();
      db.take('key:a', 'dying', 5_000);
      const controller = new AbortController();
      const waiter = wait('a', { signal: controller.signal });
      await flush();

      // At the lease's end the line attempts; its answer is on its way when the caller gives up.
      const answer = db.pause('acquire', 'before');
      await advance(5_001);
      await answer.reached;
      controller.abort(new Error('gone'));
      await flush();
      answer.open();
      await flush();

      expect(waiter.state).toBe('rejected');
      expect(granting.passOns).toHaveLength(1);
      expect(granting.passOns[0].lock).toMatchObject({ via: 'attempt' });
      expect(db.locks.get('key:a')).toMatchObject({ token: null, lastOutcome: 'expired' });
    });

    // BUG (waiting-room.ts, leaveLine): leaveLine runs as the line's `leaving` promise, and
    // awaits the pass-on it starts; the pass-on releases through the service, which first
    // awaits `room.settled(key)`, i.e. that same `leaving` promise. The pass-on waits for
    // itself: the lock stays with the abandoned place until its hand-off lease runs out (the
    // stored outcome then becomes 'expired'), and the line's loop never ends.
    it('hands a lock passed on by leaveLine to the next place in line, keeping the stored outcome', async () => {
      const { db, granting, wait } = setUp();
      db.take('key:a', 'other', 60_000);
      const waiter = wait('a', { timeoutMs: 500 });
      await flush();
      db.enqueueOther('key:a', 'behind', 'p2');
      db.releaseBy('key:a', 'other', 'error', '{"message":"boom"}');

      await advance(500);
      expect(waiter.error).toBeInstanceOf(AcquireTimeoutError);
      expect(granting.passOns).toHaveLength(1);
      expect(db.locks.get('key:a')).toMatchObject({
        token: 'behind',
        lastOutcome: 'error',
        lastError: '{"message":"boom"}',
      });
    });

    // BUG (same cause): the line whose pass-on waits for itself stays in the room for ever;
    // later callers of this process for the lock join it (hasLine) and can only time out.
    it('serves a later caller of this process for a lock whose hand-off it passed on', async () => {
      const { db, room, wait } = setUp();
      db.take('key:a', 'other', 60_000);
      const waiter = wait('a', { timeoutMs: 500 });
      await flush();
      db.releaseBy('key:a', 'other');
      await advance(500);
      expect(waiter.error).toBeInstanceOf(AcquireTimeoutError);
      expect(room.hasLine('key:a')).toBe(false);

      const later = wait('a', { timeoutMs: 5_000 });
      await advance(100);
      expect(later.state).toBe('resolved');
    });

    // BUG (waiting-room.ts, attempt/give/passOn): the attempt's answer comes after leaveLine
    // (false), readLocks and the pass-on they led to completed: `give` finds no waiter and
    // passes the same grant on a second time (with the lock built by the attempt), since
    // `passing` only suppresses a pass-on still in flight. (Today the pass-on above never
    // completes, so this fails on the lock left with the abandoned place; once that is fixed,
    // it fails on the second pass-on, whose release finds the lock gone: a spurious loss.)
    it('passes a grant on once when the attempt’s answer arrives after its waiters gave up', async () => {
      const { db, granting, wait } = setUp();
      db.take('key:a', 'dying', 5_000);
      const controller = new AbortController();
      const waiter = wait('a', { signal: controller.signal });
      await flush();

      const answer = db.pause('acquire', 'after'); // granted, and the place removed
      await advance(5_001);
      await answer.reached;
      controller.abort(new Error('gone'));
      await flush(); // leaveLine waits for the attempt on its way to decide
      expect(granting.passOns).toHaveLength(0);
      answer.open();
      await flush();

      expect(waiter.state).toBe('rejected');
      expect(granting.passOns).toHaveLength(1);
      expect(db.locks.get('key:a')!.token).toBeNull();
    });
  });

  describe('close()', () => {
    it('rejects every waiter with ShuttingDownError and gives every place up', async () => {
      const { db, bell, wait, close } = setUp();
      const leaveLine = jest.spyOn(db, 'leaveLine');
      db.take('key:a', 'other', 60_000);
      db.take('key:b', 'other', 60_000);
      const waiters = [wait('a'), wait('a'), wait('b')];
      await flush();
      const tokens = [...db.places.keys()];
      expect(tokens).toHaveLength(2);

      await close();

      for (const waiter of waiters) expect(waiter.error).toBeInstanceOf(ShuttingDownError);
      expect(leaveLine.mock.calls.map(([token]) => token).sort()).toEqual(tokens.sort());
      expect(db.places.size).toBe(0);
      expect(bell!.closes).toBe(1);
    });

    it('turns away calls that come after it', async () => {
      const { db, wait, close } = setUp();
      const enqueue = jest.spyOn(db, 'enqueue');
      await close();
      const late = wait('a');
      await expect(late.promise).rejects.toBeInstanceOf(ShuttingDownError);
      expect(enqueue).not.toHaveBeenCalled();
    });

    it('passes on a lock granted to a line while it closes', async () => {
      const { db, granting, wait, close } = setUp();
      db.take('key:a', 'dying', 5_000);
      const waiter = wait('a');
      await flush();
      const answer = db.pause('acquire', 'before');
      await advance(5_001);
      await answer.reached;

      const closing = close();
      answer.open();
      await closing;

      expect(waiter.error).toBeInstanceOf(ShuttingDownError);
      expect(granting.passOns).toHaveLength(1);
      expect(db.locks.get('key:a')!.token).toBeNull();
    });
  });

  describe('database errors while waiting', () => {
    it('rejects the line’s waiters with LockDatabaseError carrying the cause when enqueue throws', async () => {
      const { db, granting, wait } = setUp();
      const cause = new Error('connection reset');
      jest.spyOn(db, 'enqueue').mockRejectedValueOnce(cause);
      db.take('key:a', 'other', 60_000);
      const waiters = [wait('a', { timeoutMs: 500 }), wait('a', { timeoutMs: 500 })];
      await flush();

      for (const waiter of waiters) {
        expect(waiter.state).toBe('rejected');
        expect(waiter.error).toBeInstanceOf(LockDatabaseError);
        expect((waiter.error as Error).cause).toBe(cause);
      }
      await advance(1_000);
      expect(granting.timeouts).toHaveLength(0);
      expect(db.places.size).toBe(0);
    });

    it('rejects the line’s waiters with LockDatabaseError carrying the cause when a check’s readLocks throws', async () => {
      const { db, granting, bell, wait, place } = setUp();
      db.take('key:a', 'other', 60_000);
      const waiters = [wait('a', { timeoutMs: 500 }), wait('a', { timeoutMs: 500 })];
      await flush();
      const token = place('a');
      const cause = new Error('server closed the connection');
      jest.spyOn(db, 'readLocks').mockRejectedValueOnce(cause);

      bell!.ring(token);
      await flush();

      for (const waiter of waiters) {
        expect(waiter.error).toBeInstanceOf(LockDatabaseError);
        expect((waiter.error as Error).cause).toBe(cause);
      }
      await advance(PLACE_RENEW_MS);
      expect(granting.timeouts).toHaveLength(0);
      // Nobody waits any more: the place is given up (by the next check at the latest).
      expect(db.places.size).toBe(0);
    });

    it('rejects the waiters of every line with LockDatabaseError when renewPlaces throws', async () => {
      const { db, granting, wait } = setUp();
      db.take('key:a', 'other', 60_000);
      db.take('key:b', 'other', 60_000);
      const waiters = [wait('a', { timeoutMs: 2_000 }), wait('b', { timeoutMs: 2_000 })];
      await flush();
      const cause = new Error('too many connections');
      jest.spyOn(db, 'renewPlaces').mockRejectedValueOnce(cause);

      await advance(PLACE_RENEW_MS);
      for (const waiter of waiters) {
        expect(waiter.error).toBeInstanceOf(LockDatabaseError);
        expect((waiter.error as Error).cause).toBe(cause);
      }
      await advance(2_000);
      expect(granting.timeouts).toHaveLength(0);
      expect(db.places.size).toBe(0);
    });

    it('rejects with LockDatabaseError when the line’s attempt fails', async () => {
      const { db, wait } = setUp();
      const cause = new Error('deadlock');
      jest.spyOn(db, 'acquire').mockRejectedValueOnce(cause);
      db.take('key:a', 'other', 60_000);
      const waiter = wait('a');
      await flush();
      expect(waiter.error).toBeInstanceOf(LockDatabaseError);
      expect((waiter.error as Error).cause).toBe(cause);
    });
  });

  describe('the renewal tick', () => {
    it('renews every place of the process with one renewPlaces call, whatever the number of lines', async () => {
      const { db, wait } = setUp();
      const renewPlaces = jest.spyOn(db, 'renewPlaces');
      const readLocks = jest.spyOn(db, 'readLocks');
      for (const name of ['a', 'b', 'c']) db.take(`key:${name}`, 'other', 60_000);
      wait('a');
      wait('a');
      wait('b');
      wait('c');
      await flush();
      const expiries = db.placesOf(OWNER).map((p) => p.expiresAtUs);

      await advance(PLACE_RENEW_MS);
      expect(renewPlaces).toHaveBeenCalledTimes(1);
      expect(renewPlaces).toHaveBeenCalledWith(OWNER, PLACE_TTL_MS, 'bell-of-p1', 3);
      // and reads the locks of all its lines with one statement
      expect(readLocks).toHaveBeenCalledTimes(1);
      expect([...readLocks.mock.calls[0][0]].sort()).toEqual(['key:a', 'key:b', 'key:c']);
      const renewed = db.placesOf(OWNER).map((p) => p.expiresAtUs);
      renewed.forEach((expiry, i) => expect(expiry).toBe(expiries[i] + PLACE_RENEW_MS * 1000));

      await advance(PLACE_RENEW_MS);
      expect(renewPlaces).toHaveBeenCalledTimes(2);
      expect(db.placesOf(OWNER)).toHaveLength(3);
    });

    it('takes a place again when the renewal reports it gone and the lock was not handed to it', async () => {
      const { db, wait, place } = setUp();
      const enqueue = jest.spyOn(db, 'enqueue');
      db.take('key:a', 'other', 60_000);
      const waiter = wait('a');
      await flush();
      const lost = place('a');
      db.places.delete(lost); // run out (a stalled process), cleared by another's enqueue

      await advance(PLACE_RENEW_MS);
      expect(enqueue).toHaveBeenCalledTimes(2);
      const again = place('a');
      expect(again).not.toBe(lost);

      db.releaseBy('key:a', 'other');
      await advance(PLACE_RENEW_MS);
      expect(waiter.value).toMatchObject({ token: again, via: 'handover' });
    });

    it('keeps a place reported gone because the lock was handed to it, and delivers the lock', async () => {
      const { db, wait, place } = setUp();
      const enqueue = jest.spyOn(db, 'enqueue');
      db.take('key:a', 'other', 60_000);
      const waiter = wait('a');
      await flush();
      const token = place('a');
      db.releaseBy('key:a', 'other');

      await advance(PLACE_RENEW_MS);
      expect(enqueue).toHaveBeenCalledTimes(1);
      expect(waiter.value).toMatchObject({ token, via: 'handover' });
    });

    it('names the doorbell in a place taken while the doorbell connected', async () => {
      const { db, bell, wait } = setUp();
      bell!.ringing = false;
      db.take('key:a', 'other', 60_000);
      const enqueue = db.pause('enqueue', 'before');
      wait('a');
      await enqueue.reached;
      // The doorbell connects while the first place is on its way: no place to name it yet.
      bell!.ringing = true;
      bell!.connected();
      enqueue.open();
      await flush();

      expect(db.placesOf(OWNER, 'key:a')[0].doorbell).toBe('bell-of-p1');
      // The next release rings it, instead of the renewal a second later finding the grant.
      expect(db.releaseBy('key:a', 'other').ring).toMatchObject({ doorbell: 'bell-of-p1' });
    });

    it('republishes the doorbell’s address at once when it (re)connects', async () => {
      const { db, bell, wait } = setUp();
      const renewPlaces = jest.spyOn(db, 'renewPlaces');
      db.take('key:a', 'other', 60_000);
      wait('a');
      await flush();
      bell!.connected();
      await flush();
      expect(renewPlaces).toHaveBeenCalledTimes(1);
    });

    // BUG (waiting-room.ts, renew): the tick compares the tokens renewPlaces returned with the
    // line's place as it is *after* its readLocks. A place the line took in between (here
    // after a ring delivered the lock) is not among them, and the row is not handed to it,
    // so the room forgets it (line.place = null) and takes a third place. The forgotten
    // place stays in the database, renewed by every renewPlaces of the owner, ahead of the
    // new one: the next release hands the lock to it, and the waiter gets the lock only by
    // taking it over once the hand-off lease ran out (~1.5 s later, outcome 'expired').
    it('keeps a place taken while the renewal tick reads the locks', async () => {
      const { db, granting, bell, wait, place } = setUp();
      const enqueue = jest.spyOn(db, 'enqueue');
      db.take('key:a', 'other', 60_000);
      const first = wait('a');
      const second = wait('a');
      await flush();
      const token = place('a');
      const handOff = db.releaseBy('key:a', 'other');
      expect(handOff.ring!.token).toBe(token);

      // The tick: renewPlaces finds the place gone (handed the lock); its read is slow.
      const read = db.pause('readLocks', 'before');
      await advance(PLACE_RENEW_MS);
      await read.reached;
      // Meanwhile the ring delivers the lock, and the line takes a place for `second`.
      bell!.ring(token);
      await flush();
      expect(first.state).toBe('resolved');
      const secondPlace = place('a');
      read.open();
      await flush();

      expect(enqueue).toHaveBeenCalledTimes(2);
      expect(db.placesOf(OWNER, 'key:a').map((p) => p.token)).toEqual([secondPlace]);
      await granting.release(first.value!, 'error');
      await flush();
      expect(second.value).toMatchObject({ via: 'handover', lastOutcome: 'error' });
    });
  });
});
