import { backoffDelay, untilLeaseEnd } from '../../lib/internal/backoff';
import { WaitLines } from '../../lib/internal/wait-lines';

describe('backoffDelay', () => {
  it('grows exponentially within [base/2, base] and is capped', () => {
    for (let attempt = 0; attempt < 12; attempt++) {
      const base = Math.min(200, 5 * 2 ** attempt);
      for (let i = 0; i < 50; i++) {
        const delay = backoffDelay(attempt, 5, 200);
        expect(delay).toBeGreaterThanOrEqual(base / 2);
        expect(delay).toBeLessThanOrEqual(base);
      }
    }
  });

  it('wakes just after the holder lease would end', () => {
    expect(untilLeaseEnd(200, 1_000_000 + 20_000, 1_000_000)).toBe(21);
    expect(untilLeaseEnd(200, 1_000_000, 2_000_000)).toBe(1);
    expect(untilLeaseEnd(200, null, null)).toBe(200);
  });
});

describe('WaitLines', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('keeps arrival order and wakes the next waiter when the first leaves', async () => {
    const lines = new WaitLines();
    const first = lines.join('k');
    const second = lines.join('k');
    expect(lines.isFirst('k', first)).toBe(true);
    expect(lines.isFirst('k', second)).toBe(false);
    let woken = false;
    const sleeping = second.sleep(60_000).then(() => (woken = true));
    lines.leave('k', first);
    await sleeping;
    expect(woken).toBe(true);
    expect(lines.isFirst('k', second)).toBe(true);
  });

  it('wakes the first waiter when this process releases the lock', async () => {
    const lines = new WaitLines();
    lines.acquired('k');
    const waiter = lines.join('k');
    expect(lines.isHeldHere('k')).toBe(true);
    const sleeping = waiter.sleep(60_000);
    lines.released('k');
    await sleeping;
    expect(lines.isHeldHere('k')).toBe(false);
  });

  it('returns at once from a sleep that follows a wake-up', async () => {
    const lines = new WaitLines();
    const waiter = lines.join('k');
    lines.wake('k');
    await waiter.sleep(60_000);
    expect(jest.getTimerCount()).toBe(0);
  });

  it('ends a sleep after its time', async () => {
    const waiter = new WaitLines().join('k');
    const sleeping = waiter.sleep(1000);
    jest.advanceTimersByTime(1000);
    await sleeping;
  });

  it('ends a sleep when the signal aborts', async () => {
    const waiter = new WaitLines().join('k');
    const controller = new AbortController();
    const sleeping = waiter.sleep(60_000, controller.signal);
    controller.abort();
    await sleeping;
  });
});
