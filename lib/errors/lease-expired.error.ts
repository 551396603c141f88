import { MESSAGES } from '../rlock.messages';
import { RemoteLockError } from './remote-lock.error';

/**
 * What the next holder finds in `lastError` when the previous holder vanished without
 * releasing: its lease ran out and the lock was taken over. The work it guarded may be
 * half done.
 * @publicApi
 */
export class LeaseExpiredError extends RemoteLockError {
  override readonly code: string = 'RLOCK_LEASE_EXPIRED';
  /** Holder label of the vanished holder. */
  readonly holder: string | null = null;
  /** Fence of the vanished holder's acquisition. */
  readonly fence: number | null = null;
  /** When its lease ran out (database clock, milliseconds since the Unix epoch). */
  readonly expiredAt: number | null = null;

  constructor(
    message: string = MESSAGES.leaseExpired,
    details?: { holder: string | null; fence: number | null; expiredAt: number | null },
  ) {
    super(message);
    if (details) Object.assign(this, details);
  }
}
