import { performance } from 'node:perf_hooks';
import { LockDatabaseError, LockLostError } from '../../lib';
import type { LockEventEmitter } from '../../lib/events/lock-event-emitter';
import { RemoteLock, type LockLease, type ReleaseOutcome } from '../../lib/remote-lock';

/**
 * RemoteLock against a lease whose statements the test answers by hand, on fake timers:
 * what a renewal or a release does when its reply comes, fails or races another one.
 */

interface Pending<T> {
  args: unknown[];
  resolve(value: T): void;
  reject(error: unknown): void;
}

function fakeLease(ttlMs: number) {
  const renewals: Pending<number | null>[] = [];
  const releases: Pending<boolean>[] = [];
  const events = {
    renewed: jest.fn(),
    renewalFailed: jest.fn(),
    released: jest.fn(),
    releaseFailed: jest.fn(),
    lost: jest.fn(),
  };
  const pending = <T>(list: Pending<T>[], args: unknown[]) =>
    new Promise<T>((resolve, reject) => list.push({ args, resolve, reject }));
  const lease: LockLease = {
    key: 'key',
    token: 'token',
    ttlMs,
    renew: jest.fn((ttl: number) => pending(renewals, [ttl])),
    release: jest.fn((outcome: ReleaseOutcome, error: unknown) =>
      pending(releases, [outcome, error]),
    ),
    settled: jest.fn(),
    events: events as unknown as LockEventEmitter,
    grantedAt: performance.now(),
  };
  return { lease, renewals, releases, events };
}

/** A lock granted now (database clock: 1 ms = 1,000 µs from 0). */
function grant(lease: LockLease): RemoteLock {
  return new RemoteLock({
    name: 'job',
    fence: 7,
    lastError: null,
    expiresAtUs: lease.ttlMs * 1000,
    sentAt: performance.now(),
    lease,
  });
}

/** Lets the promise callbacks queued by settled statements run. */
async function flush(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

async function advance(ms: number): Promise<void> {
  await jest.advanceTimersByTimeAsync(ms);
  await flush();
}

const cut = () => new Error('Connection terminated unexpectedly');

beforeEach(() => {
  jest.useFakeTimers({ now: 0 });
  // RemoteLock reads the monotonic clock from perf_hooks, which fake timers leave alone.
  jest.spyOn(performance, 'now').mockImplementation(() => Date.now());
});
afterEach(() => {
  jest.useRealTimers();
  jest.restoreAllMocks();
});

describe('RemoteLock after a failed release (issue 13, item 1)', () => {
  it('never renews again when a renewal was in flight as the release failed, and is lost at its deadline', async () => {
    const { lease, renewals, releases, events } = fakeLease(3_000);
    const lock = grant(lease);
    await advance(1_000); // a renewal falls due (a third of the lease) …
    expect(renewals).toHaveLength(1); // … and stays in flight
    const unlocking = lock.unlock().catch((error: unknown) => error);
    expect(releases).toHaveLength(1);
    releases[0].reject(cut()); // the release's connection was cut
    expect(await unlocking).toBeInstanceOf(LockDatabaseError);
    expect(events.releaseFailed).toHaveBeenCalledTimes(1);
    renewals[0].resolve(4_000_000); // then the renewal in flight succeeds
    await flush();
    expect(lock.isHeld).toBe(true); // still ours until its deadline (the renewal's: 1,000 + 3,000)
    for (let t = 1_000; t < 3_990; t += 10) {
      await advance(10);
      // the release is tried again (and fails again) while the lease lasts
      releases.at(-1)!.reject(cut());
      await flush();
    }
    expect(renewals).toHaveLength(1); // never renewed again
    expect(releases.length).toBeGreaterThan(2);
    expect(releases.length).toBeLessThan(30); // with a backoff, not in a loop
    for (const release of releases) expect(release.args).toEqual(['released', undefined]);
    expect(lock.isHeld).toBe(true);
    expect(lock.signal.aborted).toBe(false);
    await advance(20);
    expect(lock.isHeld).toBe(false);
    expect(lock.signal.aborted).toBe(true);
    expect(lock.signal.reason).toBeInstanceOf(LockLostError);
    expect(events.lost).toHaveBeenCalledTimes(1);
    expect(lease.settled).toHaveBeenCalledTimes(1);
    const releasesAtLoss = releases.length;
    await advance(60_000);
    expect(renewals).toHaveLength(1);
    expect(releases).toHaveLength(releasesAtLoss);
  });

  it('keeps the deadline of a failed release without a renewal in flight (signal aborts then)', async () => {
    const { lease, releases } = fakeLease(3_000);
    const lock = grant(lease);
    await advance(500);
    const unlocking = lock.unlock(new Error('boom')).catch((error: unknown) => error);
    releases[0].reject(cut());
    expect(await unlocking).toBeInstanceOf(LockDatabaseError);
    // every retry fails
    const failAll = setInterval(() => {
      for (const release of releases) release.reject(cut());
    }, 1);
    await advance(2_490);
    expect(lock.isHeld).toBe(true);
    await advance(20);
    clearInterval(failAll);
    expect(lock.isHeld).toBe(false);
    expect(lock.signal.reason).toBeInstanceOf(LockLostError);
    expect(lease.renew).not.toHaveBeenCalled();
    for (const release of releases) expect(release.args[0]).toBe('error');
  });

  it('retries the release with the same outcome until it goes through', async () => {
    const { lease, releases, events } = fakeLease(3_000);
    const lock = grant(lease);
    const error = new Error('half built');
    const unlocking = lock.unlock(error).catch((e: unknown) => e);
    releases[0].reject(cut());
    expect(await unlocking).toBeInstanceOf(LockDatabaseError);
    await advance(1_000);
    expect(releases.length).toBeGreaterThanOrEqual(2);
    releases.at(-1)!.resolve(true);
    await flush();
    expect(releases.at(-1)!.args).toEqual(['error', error]);
    expect(lock.isHeld).toBe(false);
    expect(events.released).toHaveBeenCalledTimes(1);
    expect(lease.settled).toHaveBeenCalledTimes(1);
    await advance(10_000);
    expect(lock.signal.aborted).toBe(false);
    expect(lease.renew).not.toHaveBeenCalled();
    await expect(lock.unlock()).resolves.toBeUndefined();
  });

  it('tries again at once when unlock() is called again, and settles with that attempt', async () => {
    const { lease, releases } = fakeLease(30_000);
    const lock = grant(lease);
    const first = lock.unlock().catch((e: unknown) => e);
    releases[0].reject(cut());
    expect(await first).toBeInstanceOf(LockDatabaseError);
    const second = lock.unlock();
    expect(releases).toHaveLength(2);
    releases[1].resolve(true);
    await expect(second).resolves.toBeUndefined();
    expect(lock.isHeld).toBe(false);
  });

  it('refuses extend() once a release was asked for', async () => {
    const { lease, releases } = fakeLease(3_000);
    const lock = grant(lease);
    const unlocking = lock.unlock().catch((e: unknown) => e);
    releases[0].reject(cut());
    await unlocking;
    const extending = lock.extend().catch((e: unknown) => e);
    await flush();
    expect(lease.renew).not.toHaveBeenCalled();
    expect(await extending).toBeInstanceOf(LockLostError);
  });
});

describe('RemoteLock unlock after a local loss (issue 13, item 2)', () => {
  async function lostLocally() {
    const fake = fakeLease(3_000);
    const lock = grant(fake.lease);
    // Every renewal fails (the database is out of reach) until the local deadline.
    const failAll = setInterval(() => {
      for (const renewal of fake.renewals) renewal.reject(cut());
    }, 1);
    await advance(3_100);
    clearInterval(failAll);
    expect(lock.signal.aborted).toBe(true);
    return { ...fake, lock };
  }

  it('still records the outcome when the row is still this holder’s', async () => {
    const { lock, lease, releases, events } = await lostLocally();
    const error = new Error('half built');
    const unlocking = lock.unlock(error);
    expect(releases).toHaveLength(1);
    expect(releases[0].args).toEqual(['error', error]);
    releases[0].resolve(true);
    await expect(unlocking).resolves.toBeUndefined();
    expect(events.released).toHaveBeenCalledTimes(1);
    expect(lease.settled).toHaveBeenCalledTimes(1);
    expect(lock.isHeld).toBe(false);
    await expect(lock.unlock(error)).resolves.toBeUndefined(); // a second call: a no-op
    expect(releases).toHaveLength(1);
  });

  it('says that the error was lost when the release matches nothing', async () => {
    const { lock, releases } = await lostLocally();
    const unlocking = lock.unlock(new Error('half built')).catch((e: unknown) => e);
    releases[0].resolve(false);
    const error = await unlocking;
    expect(error).toBeInstanceOf(LockLostError);
    expect((error as Error).message).toMatch(/unlock\(error\).*not recorded/);
  });

  it('says that the outcome could not be recorded when the database fails', async () => {
    const { lock, releases } = await lostLocally();
    const unlocking = lock.unlock(new Error('half built')).catch((e: unknown) => e);
    releases[0].reject(cut());
    const error = await unlocking;
    expect(error).toBeInstanceOf(LockLostError);
    expect((error as Error).cause).toBeInstanceOf(LockDatabaseError);
  });
});

describe('RemoteLock extend() racing a background renewal (issue 13, item 3)', () => {
  it('keeps the local deadline and expiresAt at the earliest of the two, whatever order the replies come in', async () => {
    const { lease, renewals } = fakeLease(3_000);
    const lock = grant(lease);
    await advance(1_000);
    expect(renewals).toHaveLength(1); // the background renewal (3,000 ms) is on its way
    const extending = lock.extend(500); // and extend(500) races it
    expect(renewals).toHaveLength(2);
    expect(renewals[1].args).toEqual([500]);
    // The database ran the renewal, then the extension (which set the expiry: 1,000 + 500
    // ms); the extension's reply comes first.
    renewals[1].resolve(1_500_000);
    await flush();
    renewals[0].resolve(4_000_000);
    await extending;
    expect(lock.expiresAt.getTime()).toBe(1_500);
    // Renewals fail from now on: the lock is lost at the database's expiry, not later.
    const failAll = setInterval(() => {
      for (const renewal of renewals) renewal.reject(cut());
    }, 1);
    await advance(510);
    clearInterval(failAll);
    expect(lock.signal.aborted).toBe(true);
    expect(lock.isHeld).toBe(false);
  });

  it('does not count on a longer lease while a shorter extension is on its way', async () => {
    const { lease, renewals } = fakeLease(3_000);
    const lock = grant(lease);
    const extending = lock.extend(500).catch((e: unknown) => e);
    // The extension may have run (its reply never comes): the lease may end 500 ms on.
    await advance(510);
    expect(lock.signal.aborted).toBe(true);
    renewals[0].resolve(500_000);
    await extending;
  });

  it('uses the later lease once the renewals on their way are answered', async () => {
    const { lease, renewals } = fakeLease(3_000);
    const lock = grant(lease);
    const extending = lock.extend(60_000);
    renewals[0].resolve(60_000_000);
    await extending;
    expect(lock.expiresAt.getTime()).toBe(60_000);
    await advance(19_000);
    expect(renewals).toHaveLength(1);
    await advance(2_000);
    expect(renewals).toHaveLength(2); // a third of the new lease on
    expect(renewals[1].args).toEqual([60_000]);
    expect(lock.isHeld).toBe(true);
  });
});
