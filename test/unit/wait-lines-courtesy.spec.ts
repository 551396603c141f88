import {
  courtesyDelay,
  QUEUED_COURTESY_MS,
  retryDelay,
  WAKE_UP_FALLBACK_MS,
} from '../../lib/internal/backoff';
import { WaitLines } from '../../lib/internal/wait-lines';

describe('WaitLines courtesy', () => {
  it('lets others go first after a contended holding is released here', () => {
    const lines = new WaitLines(50);
    const waiter = lines.join('k');
    lines.contended('k');
    lines.acquired('k');
    lines.leave('k', waiter);
    lines.released('k');
    expect(lines.courtesyLeft('k')).toBeGreaterThan(0);
    expect(lines.courtesyLeft('k')).toBeLessThanOrEqual(50);
  });

  it('remembers the fence it released with while it lets others go first', () => {
    const lines = new WaitLines(50);
    const waiter = lines.join('k');
    lines.contended('k');
    lines.acquired('k');
    lines.leave('k', waiter);
    lines.released('k', 41);
    expect(lines.releasedFence('k')).toBe(41);
    lines.wake('k');
    expect(lines.releasedFence('k')).toBeUndefined();
  });

  it('gives no courtesy after an uncontended holding', () => {
    const lines = new WaitLines(50);
    lines.acquired('k');
    lines.released('k');
    expect(lines.courtesyLeft('k')).toBe(0);
  });

  it('ends the courtesy when another process releases the lock', () => {
    const lines = new WaitLines(50);
    lines.join('k');
    lines.contended('k');
    lines.acquired('k');
    lines.released('k');
    lines.wake('k');
    expect(lines.courtesyLeft('k')).toBe(0);
  });

  it('says whether callers wait', () => {
    const lines = new WaitLines();
    expect(lines.hasWaiters('k')).toBe(false);
    const waiter = lines.join('k');
    expect(lines.hasWaiters('k')).toBe(true);
    lines.leave('k', waiter);
    expect(lines.hasWaiters('k')).toBe(false);
  });
});

describe('retryDelay and courtesyDelay', () => {
  it('polls rarely while releases wake waiters', () => {
    for (let i = 0; i < 20; i++) {
      const delay = retryDelay(0, 5, 200, true);
      expect(delay).toBeGreaterThanOrEqual(WAKE_UP_FALLBACK_MS / 2);
      expect(delay).toBeLessThanOrEqual(WAKE_UP_FALLBACK_MS);
      expect(retryDelay(0, 5, 200, false)).toBeLessThanOrEqual(5);
    }
  });

  it('waits in line to be called, at least the queued courtesy', () => {
    expect(courtesyDelay(2)).toBe(QUEUED_COURTESY_MS);
    expect(courtesyDelay(QUEUED_COURTESY_MS + 10)).toBe(QUEUED_COURTESY_MS + 10);
  });
});
