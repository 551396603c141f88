/**
 * How the previous holding of a lock ended.
 * - `released`: unlocked without an error;
 * - `error`: unlocked with an error (see `lastError`);
 * - `force-released`: freed by `forceRelease()`;
 * - `expired`: the holder's lease ran out and the lock was taken over;
 * - `overran`: the holding reached its `maxHoldMs` and the lock was taken over.
 * @publicApi
 */
export type LockOutcome = 'released' | 'error' | 'force-released' | 'expired' | 'overran';

/**
 * A lock as stored, from `RLockService.inspect()` and `list()`.
 * @publicApi
 */
export interface LockState {
  /** The lock's name. */
  name: string;
  /** `held`: a live lease; `expired`: a holder whose lease ran out (free to take); `free`: released. */
  status: 'free' | 'held' | 'expired';
  /** Label of the current (or most recent) holder. */
  holder: string | null;
  /** Fence of the current (or most recent) acquisition. */
  fence: number;
  /** When the current (or most recent) acquisition was granted (database clock). */
  acquiredAt: Date | null;
  /** When the current lease ends (database clock); null when free. */
  expiresAt: Date | null;
  /** When the lock was last released (database clock). */
  releasedAt: Date | null;
  /** How the previous holding ended: what the next holder will be told. */
  lastOutcome: LockOutcome | null;
  /** The error the next holder will find in `lastError`. */
  lastError: Error | null;
  /** After a release with `minHoldMs`: the lock stays taken until then (database clock); null otherwise. */
  holdUntil: Date | null;
  /** With `maxHoldMs`: when the current (or most recent) holding must end, renewed or not. */
  holdLimit: Date | null;
  /** With `oncePer`: the start of the period whose run last took the lock. */
  lastTickAt: Date | null;
}
