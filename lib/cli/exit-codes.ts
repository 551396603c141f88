/** Exit codes of the `nestjs-rlock` command line. */
export const EXIT_CODES = {
  ok: 0,
  /** The operation failed, or the user declined. */
  failed: 1,
  /** Bad arguments or an unreadable database URL. */
  usage: 2,
  /** The database does not answer (or refuses the credentials). */
  unreachable: 3,
  /** The lock table does not exist. */
  tableMissing: 4,
  /** No lock of that name. */
  unknownLock: 5,
} as const;
