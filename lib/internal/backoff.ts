/**
 * Delay before the next attempt: exponential from `minMs`, capped at `maxMs`, with
 * jitter (between half and all of it) so that waiters do not retry in step.
 */
export function backoffDelay(attempt: number, minMs: number, maxMs: number): number {
  const base = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30));
  return base / 2 + (Math.random() * base) / 2;
}

/** The delay, shortened so the waiter tries again just after the holder's lease would end. */
export function untilLeaseEnd(
  delayMs: number,
  expiresAtUs: number | null,
  nowUs: number | null,
): number {
  if (expiresAtUs === null || nowUs === null) return delayMs;
  const leftMs = (expiresAtUs - nowUs) / 1000;
  return Math.min(delayMs, Math.max(0, leftMs) + 1);
}

/**
 * While the dialect hears every release (PostgreSQL LISTEN), a waiter is woken by the
 * release itself and polls only this rarely, for a notification lost while reconnecting.
 */
export const WAKE_UP_FALLBACK_MS = 2_000;

/**
 * How long a process that just released a contended lock waits before asking for it
 * again, unless another release wakes it first: long enough for a waiter of another
 * process to take its turn, so that a holder releasing and re-taking in a loop does not
 * starve the others.
 */
export const COURTESY_MS = 3;

/** Delay before a waiter's next attempt: the backoff, or the rare fallback poll while releases wake waiters. */
export function retryDelay(attempt: number, minMs: number, maxMs: number, woken: boolean): number {
  if (woken) return WAKE_UP_FALLBACK_MS / 2 + (Math.random() * WAKE_UP_FALLBACK_MS) / 2;
  return backoffDelay(attempt, minMs, maxMs);
}

/** The most a process that queued after its own release waits to be called before it tries anyway. */
export const QUEUED_COURTESY_MS = 50;

/** Sleep of a process that released after contention and queued behind the others: until called. */
export function courtesyDelay(courtesyLeftMs: number): number {
  return Math.max(courtesyLeftMs, QUEUED_COURTESY_MS);
}
