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
