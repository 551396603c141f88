import { performance } from 'node:perf_hooks';
import { LockLostError } from '../../lib';
import type { LockEventEmitter } from '../../lib/events/lock-event-emitter';
import { releaseThrough, RemoteLock, unlockWithError, type LockLease } from '../../lib/remote-lock';

/** A transactional section's release (`releaseThrough`) on a lock whose lease answers at once. */

function granted(release: (outcome: string) => Promise<boolean>) {
  const events = {
    renewed: jest.fn(),
    renewalFailed: jest.fn(),
    released: jest.fn(),
    releaseFailed: jest.fn(),
    lost: jest.fn(),
  };
  const lease: LockLease = {
    key: 'key',
    token: 'token',
    ttlMs: 30_000,
    renew: jest.fn(() => Promise.resolve(Date.now() * 1000 + 30_000_000)),
    release: jest.fn(release),
    settled: jest.fn(),
    events: events as unknown as LockEventEmitter,
    grantedAt: performance.now(),
  };
  const lock = new RemoteLock({
    name: 'job',
    fence: 1,
    lastError: null,
    expiresAtUs: Date.now() * 1000 + 30_000_000,
    sentAt: performance.now(),
    lease,
  });
  return { lock, lease, events };
}

describe('releaseThrough (transactional sections)', () => {
  it('releases through the given release, never the lease’s', async () => {
    const { lock, lease, events } = granted(() => Promise.resolve(true));
    const via = jest.fn(() => Promise.resolve(true));
    await releaseThrough(lock, via);
    expect(via).toHaveBeenCalledWith('released', undefined);
    expect(lease.release).not.toHaveBeenCalled();
    expect(lock.isHeld).toBe(false);
    expect(events.released).toHaveBeenCalledTimes(1);
    expect(lease.settled).toHaveBeenCalledTimes(1);
  });

  it('a release that matches nothing is a loss: LockLostError, the signal aborts', async () => {
    const { lock, events } = granted(() => Promise.resolve(true));
    await expect(releaseThrough(lock, () => Promise.resolve(false))).rejects.toBeInstanceOf(
      LockLostError,
    );
    expect(lock.isHeld).toBe(false);
    expect(lock.signal.aborted).toBe(true);
    expect(events.lost).toHaveBeenCalledTimes(1);
  });

  it('a release that fails leaves the lock held for a release with the error outside', async () => {
    const { lock, lease, events } = granted(() => Promise.resolve(true));
    const cause = new Error('serialization failure');
    await expect(releaseThrough(lock, () => Promise.reject(cause))).rejects.toBe(cause);
    expect(lock.isHeld).toBe(true);
    expect(events.releaseFailed).not.toHaveBeenCalled();
    const failure = new Error('work failed');
    await unlockWithError(lock, failure);
    expect(lease.release).toHaveBeenCalledWith('error', failure);
    expect(lock.isHeld).toBe(false);
  });
});
