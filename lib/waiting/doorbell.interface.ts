/**
 * How a release wakes a waiting process of the same database at once: one connection per
 * process (a PostgreSQL LISTEN, a MySQL/MariaDB session asleep in `SLEEP()`), whatever the
 * number of names and waiters. Without one, or while it is down, waiting processes poll.
 */
export interface Doorbell {
  /** What a place stores so that a release can ring this doorbell (null: the owner is enough). */
  readonly address: string | null;
  /** Whether rings are heard now (connected and verified); otherwise the process polls. */
  readonly ringing: boolean;
  /**
   * Connects in the background (reconnecting when the connection drops). `ring(token)` is
   * called when a release handed this process a lock (with the place's token when the
   * database says which); `connected()` after each (re)connection: rings may have been
   * missed, and the places should name the new address.
   */
  open(owner: string, ring: (token?: string) => void, connected: () => void): void;
  /** Closes the connection. */
  close(): Promise<void>;
  /** Rings another process's doorbell at `address` (for databases that cannot ring themselves). */
  ringAt?(address: string, token: string): void;
}
