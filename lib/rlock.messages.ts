/**
 * Every user-facing message of nestjs-rlock, in one place so that wording stays
 * consistent and tests can refer to it.
 */
export const MESSAGES = {
  acquireTimeout: (name: string, timeoutMs: number) =>
    `Could not acquire the lock "${name}" within ${timeoutMs} ms: another holder has it.`,
  lockLost: (name: string, why: string) => `The lock "${name}" is no longer held: ${why}.`,
  lostExpired: 'its lease expired and could not be renewed',
  lostTakenOver: 'its lease ran out and the lock is now held by someone else or was force-released',
  lostReleased: 'it was already released',
  lostShutdown: 'the application is shutting down',
  reentry: (name: string) =>
    `The lock "${name}" is already held by this locked section; asking for it again would wait for itself. ` +
    'Pass { reentrant: true } to reuse the lock held by the enclosing section.',
  leaseExpired:
    'The previous holder did not release the lock before its lease expired (it crashed, hung or lost its connection); the work it guarded may be half done.',
  forceReleased: 'The lock was force-released by an operator.',
  databaseError: (operation: string, name: string | undefined) =>
    name === undefined
      ? `The lock database failed during ${operation}.`
      : `The lock database failed during ${operation} of the lock "${name}".`,
  shuttingDown: 'RLockService is shutting down: no new locks are granted.',
  unreadableStoredError: 'The error stored by the previous holder could not be read.',
  nonErrorThrown: (kind: string) => `A non-Error value was thrown (${kind}).`,
  invalid: {
    name: (got: string) =>
      `Lock name must be a non-empty string of at most 255 characters, with no NUL character and well-formed Unicode; got ${got}.`,
    duration: (arg: string, unit: string, min: number, max: number, got: string) =>
      `${arg} must be an integer number of ${unit} from ${min} to ${max}; got ${got}.`,
    options: (arg: string, got: string) => `${arg} must be a plain object; got ${got}.`,
    unknownOption: (arg: string, key: string, known: readonly string[]) =>
      `${arg} has an unknown option "${key}"; known options: ${known.join(', ')}.`,
    boolean: (arg: string, got: string) => `${arg} must be a boolean; got ${got}.`,
    signal: (arg: string, got: string) => `${arg} must be an AbortSignal; got ${got}.`,
    function: (arg: string, got: string) => `${arg} must be a function; got ${got}.`,
    holder: (got: string) =>
      `holder must be a non-empty string of at most 255 characters with no NUL character; got ${got}.`,
    tableName: (got: string) =>
      `tableName must be an SQL identifier (letters, digits, _; optionally schema.table; at most 63 characters each); got ${got}.`,
    errorClasses: (got: string) => `errors must be an array of Error classes; got ${got}.`,
    reason: (got: string) => `reason must be a string of at most 1000 characters; got ${got}.`,
  },
  unsupportedDatabase: (type: string) =>
    `nestjs-rlock does not support the TypeORM driver "${type}". Supported: "better-sqlite3" (SQLite), "postgres" (PostgreSQL, CockroachDB), "mysql" and "mariadb" (MySQL, MariaDB through mysql2).`,
  tableMissing: (table: string) =>
    `The lock table "${table}" does not exist. Either let TypeORM create it (synchronize: true with autoLoadEntities: true, or add createRLockEntity() to your entities), ` +
    `or add createRLockMigration() to your migrations and run them.`,
  dataSourceNotInitialized: 'The TypeORM data source given to RLockModule is not initialized.',
} as const;
