/**
 * Delay before the next poll: exponential from `minMs`, capped at `maxMs`, with jitter
 * (between half and all of it) so that waiting processes do not poll in step.
 */
export function backoffDelay(attempt: number, minMs: number, maxMs: number): number {
  const base = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30));
  return base / 2 + (Math.random() * base) / 2;
}
