import { performance } from 'node:perf_hooks';
import type {
  Granted,
  LockDialect,
  NotGranted,
  Place,
  StoredLock,
} from '../dialects/dialect.interface';
import { AcquireTimeoutError } from '../errors/acquire-timeout.error';
import { LockDatabaseError } from '../errors/lock-database.error';
import { RemoteLockError } from '../errors/remote-lock.error';
import { ShuttingDownError } from '../errors/shutting-down.error';
import { ownerToken } from '../internal/owner-token';
import { MESSAGES } from '../rlock.messages';
import { backoffDelay } from './backoff';
import type { Doorbell } from './doorbell.interface';
import { PICK_UP_MARGIN_MS, PLACE_RENEW_MS, PLACE_TTL_MS } from './waiting.constants';

/** One call waiting for a lock. */
export interface WaitRequest {
  name: string;
  key: string;
  ttlMs: number;
  /** The holding's minimum hold and hold limit (`null`: none); `oncePer` calls never wait. */
  minHoldMs: number | null;
  maxHoldMs: number | null;
  oncePerMs: null;
  timeoutMs: number;
  /** performance.now() by which the call gives up. */
  deadline: number;
  signal: AbortSignal | undefined;
  /** performance.now() when the call began. */
  startedAt: number;
  /** Goes to the head of the local line: it came first, its attempt failed while others joined. */
  first?: boolean;
}

/** What the waiting room needs from the service that grants locks. */
export interface LockGranting<L> {
  /** One attempt in line (`place`) or as a newcomer; the lock, or why not. */
  attempt(request: WaitRequest, token: string, place: Place | null): Promise<L | NotGranted>;
  /** The lock of a grant made by a hand-off to `token` (read from its row). */
  handedOver(request: WaitRequest, token: string, grant: Granted, sentAt: number): L;
  /**
   * Passes a lock granted to a place whose waiters all gave up on to the next in line,
   * keeping the stored outcome: `lock` when it was built already, else the row's key and token.
   */
  passOn(key: string, token: string, lock?: L): Promise<void>;
  /** A call gave up at its deadline. */
  timedOut(request: WaitRequest): void;
  /** Whether this process holds the lock (its own release will see a place taken now). */
  heldHere(key: string): boolean;
}

interface Waiter {
  request: WaitRequest;
  resolve(lock: unknown): void;
  reject(error: unknown): void;
  /** Stops the waiter's own timer and abort listener. */
  settle(): void;
}

interface Line {
  key: string;
  waiters: Waiter[];
  /** This process's place in the lock's line (one per lock, whoever waits first). */
  place: Place | null;
  /** The lock's row as last read by a check, with the place token it was read for. */
  seen: { token: string; row: StoredLock; sentAt: number } | null;
  /** Attempt again (the lease ends, or the lock looked free with a place ahead). */
  retryDue: boolean;
  retryTimer: NodeJS.Timeout | undefined;
  wake: () => void;
  running: boolean;
  /** Settles once the line has given its place up (see `settled`). */
  leaving: Promise<void> | undefined;
  /** Settles once the attempt on its way from the place has been dealt with. */
  attempting: Promise<void> | undefined;
}

/**
 * Where the callers of one process wait for locks: the one home of waiting.
 *
 * - Callers of this process waiting for one lock form a local line; only its head is
 *   represented in the database, by one place in the lock's line (a row of the waiters
 *   table). A release hands the lock to the first live place in the same commit; the
 *   place's process learns of it through its doorbell (or by polling) and reads the row.
 * - Every place has a short lease that the process renews for all its places with one
 *   statement; a process that dies stops renewing, and its places are skipped.
 * - At most one doorbell connection per process, whatever the number of names.
 */
export class WaitingRoom<L> {
  private readonly lines = new Map<string, Line>();
  private renewTimer: NodeJS.Timeout | undefined;
  private renewing = false;
  private pollTimer: NodeJS.Timeout | undefined;
  private polls = 0;
  private closing = false;
  private checking: Promise<void> | undefined;
  private checkAgain = false;
  /** Tokens of grants being passed on. */
  private readonly passing = new Set<string>();

  constructor(
    private readonly dialect: LockDialect,
    private readonly granting: LockGranting<L>,
    private readonly options: {
      /** This process, as its places name it. */
      owner: string;
      holder: string;
      backoffMinMs: number;
      backoffMaxMs: number;
    },
    private doorbell: Doorbell | undefined = undefined,
  ) {}

  /** Sets the doorbell once the dialect knows its database (before anybody waits). */
  useDoorbell(doorbell: Doorbell | undefined): void {
    this.doorbell = doorbell;
  }

  /** Whether callers of this process wait for `key` (a newcomer joins them without an attempt). */
  hasLine(key: string): boolean {
    return this.lines.has(key);
  }

  /** Waits in line for the lock of `request` (its first attempt failed, or others here wait). */
  wait(request: WaitRequest): Promise<L> {
    if (this.closing) return Promise.reject(new ShuttingDownError());
    if (request.signal?.aborted) return Promise.reject(request.signal.reason);
    return new Promise<L>((resolve, reject) => {
      let line = this.lines.get(request.key);
      if (!line) {
        line = {
          key: request.key,
          waiters: [],
          place: null,
          seen: null,
          retryDue: false,
          retryTimer: undefined,
          wake: () => undefined,
          running: false,
          leaving: undefined,
          attempting: undefined,
        };
        this.lines.set(request.key, line);
      }
      const theLine = line;
      const onAbort = () => leave(request.signal!.reason);
      // Timers may fire a little early by the monotonic clock: never give up before the deadline.
      const arm = (): NodeJS.Timeout =>
        setTimeout(
          () => {
            if (performance.now() < request.deadline) {
              timer = arm();
              return;
            }
            this.granting.timedOut(request);
            leave(new AcquireTimeoutError(request.name, request.timeoutMs));
          },
          Math.max(0, Math.ceil(request.deadline - performance.now())),
        );
      let timer = arm();
      const waiter: Waiter = {
        request,
        resolve: resolve as (lock: unknown) => void,
        reject,
        settle: () => {
          clearTimeout(timer);
          request.signal?.removeEventListener('abort', onAbort);
        },
      };
      const leave = (error: unknown) => {
        const index = theLine.waiters.indexOf(waiter);
        if (index === -1) return;
        theLine.waiters.splice(index, 1);
        waiter.settle();
        reject(error);
        if (theLine.waiters.length === 0 && theLine.place && !theLine.leaving) {
          // Given up at once (not at the loop's next turn), so a release here can wait for it.
          theLine.leaving = this.leaveLine(theLine);
        }
        theLine.wake();
      };
      request.signal?.addEventListener('abort', onAbort, { once: true });
      if (request.first) line.waiters.unshift(waiter);
      else line.waiters.push(waiter);
      if (!line.running) void this.run(line);
    });
  }

  /**
   * Resolves once this process no longer has a place for `key` that nobody here waits on
   * (a place being given up): a release of this process then does not hand the lock to it.
   */
  settled(key: string): Promise<void> | undefined {
    return this.lines.get(key)?.leaving;
  }

  /** A release of this process handed a lock to this process (its own place). */
  handedHere(key: string): void {
    if (this.lines.get(key)?.place) this.check([key]);
  }

  /** Rings another process's doorbell, for a database that cannot (after the release committed). */
  ring(doorbell: string, token: string): void {
    this.doorbell?.ringAt?.(doorbell, token);
  }

  /** Turns every waiter away, gives the places up and closes the doorbell. */
  async close(): Promise<void> {
    this.closing = true;
    const lines = [...this.lines.values()];
    for (const line of lines) {
      for (const waiter of line.waiters.splice(0)) {
        waiter.settle();
        waiter.reject(new ShuttingDownError());
      }
      line.wake();
    }
    clearTimeout(this.renewTimer);
    clearTimeout(this.pollTimer);
    // Each line's loop gives its place up; wait for them, but not for ever.
    await Promise.race([
      Promise.allSettled(lines.map((line) => this.idle(line))),
      new Promise((resolve) => setTimeout(resolve, 2_000).unref()),
    ]);
    await this.doorbell?.close();
  }

  /** Resolves once `line` stopped running. */
  private async idle(line: Line): Promise<void> {
    while (line.running) await new Promise((resolve) => setTimeout(resolve, 5));
  }

  /** The loop of one line: runs while callers wait, then gives the place up. */
  private async run(line: Line): Promise<void> {
    line.running = true;
    try {
      for (;;) {
        if (line.waiters.length === 0) {
          line.leaving ??= this.leaveLine(line);
          await line.leaving;
          line.leaving = undefined;
          if (line.waiters.length === 0) break;
          continue;
        }
        try {
          await this.step(line);
        } catch (error) {
          this.fail(line, error);
        }
      }
    } finally {
      line.running = false;
      clearTimeout(line.retryTimer);
      if (this.lines.get(line.key) === line && line.waiters.length === 0) {
        this.lines.delete(line.key);
      }
      if (![...this.lines.values()].some((l) => l.place)) this.stopTimers();
    }
  }

  /** One turn: take a place (and try), deliver a grant seen, try again when due, or sleep. */
  private async step(line: Line): Promise<void> {
    const head = line.waiters[0];
    if (line.place === null) {
      // The place given up when the last waiter left, just before this one came: let it go
      // first, so that `leaving` speaks of the place taken now (else it is never given up).
      if (line.leaving) {
        await line.leaving;
        line.leaving = undefined;
        if (line.waiters.length === 0) return;
      }
      this.doorbell?.open(
        this.options.owner,
        (token) => this.rung(token),
        () => this.doorbellConnected(),
      );
      const token = ownerToken();
      const doorbell = this.doorbell?.ringing ? this.doorbell.address : null;
      line.place = await this.dialect.enqueue({
        key: line.key,
        token,
        holder: this.options.holder,
        ttlMs: head.request.ttlMs,
        maxHoldMs: head.request.maxHoldMs,
        owner: this.options.owner,
        doorbell,
        placeTtlMs: PLACE_TTL_MS,
      });
      this.startTimers();
      // The doorbell (re)connected while the place was on its way (with no place to renew
      // then): the place names its address now, not at the next renewal a second later.
      if (this.doorbell?.ringing && this.doorbell.address !== doorbell) this.doorbellConnected();
      // Released before the place was visible: the lock may be free with nobody called.
      // (Held here and not being released: this process's own release will see the place.)
      if (!this.granting.heldHere(line.key)) await this.attempt(line);
      return;
    }
    const seen = line.seen;
    line.seen = null;
    if (seen && seen.token === line.place.token) {
      if (seen.row.token === line.place.token) {
        await this.deliver(line, seen.row, seen.sentAt);
        return;
      }
      // Free (a place ahead may take it): try at once; held: when its lease would end.
      if (seen.row.token === null) line.retryDue = true;
      else this.scheduleRetry(line, seen.row.expiresAtUs, seen.row.nowUs);
    }
    if (line.retryDue) {
      line.retryDue = false;
      await this.attempt(line);
      return;
    }
    await new Promise<void>((resolve) => (line.wake = resolve));
    line.wake = () => undefined;
  }

  /** Asks for the lock with the line's place: granted when no live place is ahead. */
  private attempt(line: Line): Promise<void> {
    const attempting = this.attemptNow(line);
    line.attempting = attempting.catch(() => undefined);
    return attempting.finally(() => {
      line.attempting = undefined;
    });
  }

  private async attemptNow(line: Line): Promise<void> {
    const place = line.place!;
    const head = line.waiters[0];
    if (!head) return;
    const result = await this.granting.attempt(head.request, place.token, place);
    if (isNotGranted(result)) {
      this.scheduleRetry(line, result.expiresAtUs, result.nowUs);
      return;
    }
    // Granted: the statement also removed the place.
    line.place = null;
    clearTimeout(line.retryTimer);
    this.give(line, result, place.token);
  }

  /**
   * Tries again when the holder's lease would end (a holder that died, or a hand-off to a
   * place that died), or after a renewal period when the lock is free with places ahead.
   */
  private scheduleRetry(line: Line, expiresAtUs: number | null, nowUs: number | null): void {
    clearTimeout(line.retryTimer);
    const delay =
      expiresAtUs === null || nowUs === null
        ? PLACE_RENEW_MS
        : Math.max(0, (expiresAtUs - nowUs) / 1000) + 1;
    line.retryTimer = setTimeout(() => {
      line.retryDue = true;
      line.wake();
    }, delay);
    line.retryTimer.unref();
  }

  /** Gives a hand-off found in the lock's row to the head of the line. */
  private async deliver(line: Line, row: StoredLock, sentAt: number): Promise<void> {
    const token = line.place!.token;
    line.place = null;
    clearTimeout(line.retryTimer);
    let head = line.waiters[0];
    if (!head) {
      this.passOn(line.key, token);
      return;
    }
    // Found late (a lost ring, a busy process): the hand-off's short lease is nearly over or
    // over. Take it up again first, while it is still this token's; else it went on.
    if ((row.expiresAtUs ?? 0) - row.nowUs < PICK_UP_MARGIN_MS * 1000) {
      sentAt = performance.now();
      const end = await this.dialect.extend(line.key, token, head.request.ttlMs, true);
      if (end === null) return; // taken over meanwhile: the line takes a new place
      row = { ...row, expiresAtUs: end, nowUs: end - head.request.ttlMs * 1000 };
      head = line.waiters[0];
      if (!head) {
        this.passOn(line.key, token);
        return;
      }
    }
    const grant: Granted = {
      acquired: true,
      fence: row.fence,
      acquiredAtUs: row.acquiredAtUs ?? row.nowUs,
      expiresAtUs: row.expiresAtUs ?? row.nowUs,
      lastOutcome: row.lastOutcome,
      lastError: row.lastError,
      nowUs: row.nowUs,
      holdLimitUs: row.holdLimitUs,
    };
    this.give(line, this.granting.handedOver(head.request, token, grant, sentAt), token);
  }

  /** Hands a lock to the head of the line, or passes it on when nobody waits any more. */
  private give(line: Line, lock: L, token: string): void {
    const head = line.waiters.shift();
    if (!head) {
      this.passOn(line.key, token, lock);
      return;
    }
    head.settle();
    head.resolve(lock);
  }

  /** Nobody here waits any more: gives the place up; a lock handed to it meanwhile is passed on. */
  private async leaveLine(line: Line): Promise<void> {
    // An attempt from the place on its way decides first (a grant it brings is passed on
    // by `give`, and the place is gone then).
    await line.attempting;
    const place = line.place;
    if (place === null) return;
    line.place = null;
    clearTimeout(line.retryTimer);
    try {
      if (await this.dialect.leaveLine(place.token)) return;
      const row = (await this.dialect.readLocks([line.key])).get(line.key);
      // Not awaited: the pass-on is a release, which waits for this very leaving.
      if (row?.token === place.token) void this.passOn(line.key, place.token);
    } catch {
      // The place runs out on its own (PLACE_TTL_MS), and a lock handed to it then expires.
    }
  }

  /** Passes a lock granted to a place nobody waits on any more along, once per grant. */
  private passOn(key: string, token: string, lock?: L): Promise<void> {
    if (this.passing.has(token)) return Promise.resolve();
    this.passing.add(token);
    return this.granting
      .passOn(key, token, lock)
      .catch(() => undefined)
      .finally(() => this.passing.delete(token));
  }

  /** A database error while waiting: the line's callers get it (never a timeout in disguise). */
  private fail(line: Line, cause: unknown): void {
    const error =
      cause instanceof RemoteLockError
        ? cause
        : new LockDatabaseError(
            MESSAGES.databaseError('wait', line.waiters[0]?.request.name),
            cause,
          );
    for (const waiter of line.waiters.splice(0)) {
      waiter.settle();
      waiter.reject(error);
    }
    // Its loop gives the place up at once.
    line.wake();
  }

  /** The doorbell rang: a release handed this process a lock (the place `token`'s, when known). */
  private rung(token?: string): void {
    if (token !== undefined) {
      for (const line of this.lines.values()) {
        if (line.place?.token === token) return this.check([line.key]);
      }
    }
    this.check();
  }

  /** The doorbell (re)connected: the places name its address now, and rings may have been missed. */
  private doorbellConnected(): void {
    if (this.renewing || ![...this.lines.values()].some((line) => line.place)) return;
    clearTimeout(this.renewTimer);
    void this.renew();
  }

  /** Reads the locks of the lines that have a place (all, or those of `keys`), one statement. */
  private check(keys?: string[]): void {
    if (this.checking) {
      this.checkAgain = true;
      return;
    }
    const lines = (keys ?? [...this.lines.keys()])
      .map((key) => this.lines.get(key))
      .filter((line): line is Line => line?.place != null);
    if (lines.length === 0) return;
    const sentAt = performance.now();
    const tokens = new Map(lines.map((line) => [line.key, line.place!.token]));
    this.checking = this.dialect
      .readLocks(lines.map((line) => line.key))
      .then(
        (rows) => {
          for (const line of lines) {
            const row = rows.get(line.key);
            const token = tokens.get(line.key)!;
            if (row === undefined || line.place?.token !== token) continue;
            line.seen = { token, row, sentAt };
            line.wake();
          }
        },
        (error: unknown) => {
          for (const line of lines) this.fail(line, error);
        },
      )
      .finally(() => {
        this.checking = undefined;
        if (this.checkAgain) {
          this.checkAgain = false;
          this.check();
        }
      });
  }

  private startTimers(): void {
    if (this.renewTimer === undefined) {
      this.renewTimer = setTimeout(() => void this.renew(), PLACE_RENEW_MS);
      this.renewTimer.unref();
    }
    this.schedulePoll(true);
  }

  private stopTimers(): void {
    clearTimeout(this.renewTimer);
    clearTimeout(this.pollTimer);
    this.renewTimer = undefined;
    this.pollTimer = undefined;
  }

  /** Renews every place of this process, and reads their locks (a lost ring, a dead holder). */
  private async renew(): Promise<void> {
    const placed = [...this.lines.values()].filter((line) => line.place);
    if (placed.length === 0 || this.closing) {
      this.renewTimer = undefined;
      return;
    }
    this.renewing = true;
    // The tokens renewed: a line may take a new place meanwhile, which this tick must keep.
    const tokens = new Map(placed.map((line) => [line, line.place!.token]));
    try {
      const renewed = await this.dialect.renewPlaces(
        this.options.owner,
        PLACE_TTL_MS,
        this.doorbell?.ringing ? this.doorbell.address : null,
        placed.length,
      );
      if (Array.isArray(renewed)) {
        // Places gone: handed the lock (the check finds it) or run out (take a new one).
        const alive = new Set(renewed);
        const rows = await this.dialect.readLocks(placed.map((line) => line.key));
        for (const line of placed) {
          const token = tokens.get(line)!;
          if (line.place?.token !== token || alive.has(token)) continue;
          if (rows.get(line.key)?.token !== token) line.place = null;
          line.wake();
        }
      }
    } catch (error) {
      for (const line of placed) this.fail(line, error);
    } finally {
      this.renewing = false;
    }
    this.check();
    if (this.closing) return;
    // A doorbell that stopped ringing: poll until it rings again.
    this.schedulePoll();
    this.renewTimer = setTimeout(() => void this.renew(), PLACE_RENEW_MS);
    this.renewTimer.unref();
  }

  /** Without a ringing doorbell, reads the locks of this process's places with a backoff. */
  private schedulePoll(reset = false): void {
    if (reset) this.polls = 0;
    if (this.pollTimer !== undefined || this.doorbell?.ringing) return;
    const delay = backoffDelay(this.polls++, this.options.backoffMinMs, this.options.backoffMaxMs);
    this.pollTimer = setTimeout(() => {
      this.pollTimer = undefined;
      if (this.closing || ![...this.lines.values()].some((line) => line.place)) return;
      this.check();
      this.schedulePoll();
    }, delay);
    this.pollTimer.unref();
  }
}

function isNotGranted<L>(result: L | NotGranted): result is NotGranted {
  return (result as NotGranted).acquired === false;
}
