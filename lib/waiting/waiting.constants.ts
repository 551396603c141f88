/**
 * How long a place in line lasts unless its process renews it: a process that died while
 * waiting holds its line up for at most about this long.
 */
export const PLACE_TTL_MS = 2_000;

/**
 * How often a waiting process renews all its places and reads their locks (two statements,
 * whatever their number): a ring lost, a holder that died.
 */
export const PLACE_RENEW_MS = 1_000;

/**
 * The lease a hand-off gives the next holder (or its own ttl, if shorter) until that holder
 * renews it: a place whose process died just before its turn holds the line up for at most
 * about this long, never a whole lease.
 */
export const HANDOFF_LEASE_MS = 1_500;

/**
 * A hand-off found with less than this left of its short lease (a lost ring, a busy
 * process) is taken up again, if still this process's, before it is delivered.
 */
export const PICK_UP_MARGIN_MS = 500;

/** Reconnection backoff of a doorbell connection. */
export const DOORBELL_RECONNECT_MIN_MS = 100;
export const DOORBELL_RECONNECT_MAX_MS = 5_000;

/**
 * How long past its acquire timeout a call waits for an attempt the database has not
 * answered (no pooled connection free, a lock wait) before it fails with LockDatabaseError.
 */
export const ATTEMPT_GRACE_MS = 1_000;
