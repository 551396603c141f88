import { WaitQueue, type QueueSession } from '../../lib/dialects/wait-queue';

/** A session whose native lock requests the test grants or fails by hand. */
class FakeSession implements QueueSession {
  readonly requests: { key: string; grant(): void; fail(error: Error): void }[] = [];
  readonly unlocked: string[] = [];
  destroyed = false;

  lock(key: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.requests.push({ key, grant: resolve, fail: reject });
    });
  }

  async unlock(key: string): Promise<void> {
    this.unlocked.push(key);
  }

  destroy(): void {
    this.destroyed = true;
  }
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

describe('WaitQueue', () => {
  let sessions: FakeSession[];
  let called: string[];
  let queue: WaitQueue<FakeSession>;

  beforeEach(() => {
    sessions = [];
    called = [];
    queue = new WaitQueue<FakeSession>(
      () => {
        const session = new FakeSession();
        sessions.push(session);
        return session;
      },
      (key) => called.push(key),
    );
  });

  it('is queued until the native lock is granted, then first in line and called', async () => {
    expect(queue.enter('k')).toBe(true);
    expect(queue.placeOf('k')).toBe('queued');
    expect(queue.enter('k')).toBe(true);
    expect(sessions).toHaveLength(1);
    sessions[0].requests[0].grant();
    await flush();
    expect(queue.placeOf('k')).toBe('first');
    expect(called).toEqual(['k']);
  });

  it('withdraws a request still waiting by ending its session', () => {
    queue.enter('k');
    queue.leave('k');
    expect(queue.placeOf('k')).toBeUndefined();
    expect(sessions[0].destroyed).toBe(true);
  });

  it('gives the native lock up when leaving from first place, and reuses the session', async () => {
    queue.enter('k');
    sessions[0].requests[0].grant();
    await flush();
    queue.leave('k');
    await flush();
    expect(sessions[0].unlocked).toEqual(['k']);
    expect(sessions[0].destroyed).toBe(false);
    queue.enter('other');
    expect(sessions).toHaveLength(1);
    expect(sessions[0].requests[1].key).toBe('other');
  });

  it('leaves through a release statement only from first place', async () => {
    queue.enter('k');
    expect(
      queue.leaveThrough(
        'k',
        async () => true,
        (r) => r,
      ),
    ).toBeUndefined();
    sessions[0].requests[0].grant();
    await flush();
    const ran: FakeSession[] = [];
    await expect(
      queue.leaveThrough(
        'k',
        async (session) => {
          ran.push(session);
          return true;
        },
        (r) => r,
      ),
    ).resolves.toBe(true);
    expect(ran).toEqual([sessions[0]]);
    // The statement gave the native lock up itself: no separate unlock.
    expect(sessions[0].unlocked).toEqual([]);
    expect(queue.placeOf('k')).toBeUndefined();
  });

  it('unlocks separately when the release statement did not give the native lock up', async () => {
    queue.enter('k');
    sessions[0].requests[0].grant();
    await flush();
    await queue.leaveThrough(
      'k',
      async () => false,
      (r) => r,
    );
    expect(sessions[0].unlocked).toEqual(['k']);
  });

  it('loses the place and calls the waiter when its session fails', async () => {
    queue.enter('k');
    sessions[0].requests[0].fail(new Error('connection lost'));
    await flush();
    expect(queue.placeOf('k')).toBeUndefined();
    expect(sessions[0].destroyed).toBe(true);
    expect(called).toEqual(['k']);
  });

  it('stops queueing for a while after repeated session failures (waiters poll)', async () => {
    for (let i = 0; i < 3; i++) {
      expect(queue.enter('k')).toBe(true);
      sessions[i].requests[0].fail(new Error('refused'));
      await flush();
    }
    expect(queue.enter('k')).toBe(false);
  });

  it('queues at most 8 names at once and none after close', () => {
    for (let i = 0; i < 8; i++) expect(queue.enter(`k${i}`)).toBe(true);
    expect(queue.enter('k8')).toBe(false);
    queue.close();
    expect(sessions.every((s) => s.destroyed)).toBe(true);
    expect(queue.enter('k0')).toBe(false);
  });
});
