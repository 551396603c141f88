/**
 * Options of `RLockService.forceRelease()`.
 * @publicApi
 */
export interface ForceReleaseOptions {
  /** Stored for the next holder as the message of its `ForceReleasedError`. */
  reason?: string;
  /**
   * Release only the holding granted with this fence (the `fence` that `inspect()` showed):
   * if the lock was released or changed hands since, nothing is released. Without it, the
   * lock is freed whoever holds it.
   */
  fence?: number;
}
