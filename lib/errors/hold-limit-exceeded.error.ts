import { MESSAGES } from '../rlock.messages';
import { LockLostError } from './lock-lost.error';

/**
 * A holding reached its `maxHoldMs`: the holder's `signal` aborts with it (renewals stop
 * and the lock is free at the limit, even if the holder is still running), and the next
 * holder finds it in `lastError` (outcome `overran`). The work it guarded may be half done.
 * @publicApi
 */
export class HoldLimitExceededError extends LockLostError {
  override readonly code: string = 'RLOCK_HOLD_LIMIT';
  /** Holder label of the holding that overran. */
  readonly holder: string | null = null;
  /** Fence of that holding. */
  readonly fence: number | null = null;
  /** When its hold limit was reached (database clock, milliseconds since the Unix epoch). */
  readonly limitAt: number | null = null;

  constructor(
    lockName = '',
    details?: { holder: string | null; fence: number | null; limitAt: number | null },
  ) {
    super(lockName, MESSAGES.holdLimitExceeded);
    if (details) Object.assign(this, details);
  }
}
