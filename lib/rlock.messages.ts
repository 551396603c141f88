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
  lostShutdownGrace:
    'the application shut down and its section did not finish within shutdownGraceMs; the lock is left to expire',
  lostUnreleased:
    'its release failed and its lease ran out before a retry went through (the next holder finds a LeaseExpiredError)',
  lostErrorDropped: (why: string) =>
    `${why}; the error passed to unlock(error) was not recorded for the next holder (the lock's row is no longer this holder's)`,
  lostOutcomeUnrecorded: (why: string) =>
    `${why}; the release tried anyway failed, so the outcome was not recorded`,
  reentry: (name: string) =>
    `The lock "${name}" is already held by this locked section; asking for it again would wait for itself. ` +
    'Pass { reentrant: true } to reuse the lock held by the enclosing section.',
  leaseExpired:
    'The previous holder did not release the lock before its lease expired (it crashed, hung or lost its connection); the work it guarded may be half done.',
  forceReleased: 'The lock was force-released by an operator.',
  noAnswer: (ms: number) =>
    `The database did not answer within ${ms} ms (no free connection in the pool, or a lock wait).`,
  databaseError: (operation: string, name: string | undefined) =>
    name === undefined
      ? `The lock database failed during ${operation}.`
      : `The lock database failed during ${operation} of the lock "${name}".`,
  shuttingDown: 'RLockService is shutting down: no new locks are granted.',
  unreadableStoredError: 'The error stored by the previous holder could not be read.',
  nonErrorThrown: (kind: string) => `A non-Error value was thrown (${kind}).`,
  invalid: {
    isolationLevel: (got: string) =>
      `isolationLevel must be one of 'READ UNCOMMITTED', 'READ COMMITTED', 'REPEATABLE READ', 'SERIALIZABLE'; got ${got}.`,
    transactionalReentry:
      'transactional cannot re-enter a held lock: the enclosing section releases it (run the work in its transaction).',
    transactionalUnsupported: (database: string) =>
      `transactional sections need a TypeORM data source that supports them; ${database} does not.`,
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
      `tableName must be an SQL identifier (letters, digits, _; optionally schema.table; a schema of at most 63 characters, a table of at most 49); got ${got}.`,
    errorClasses: (got: string) => `errors must be an array of Error classes; got ${got}.`,
    period: (got: string) =>
      `oncePer must be a period in milliseconds (a positive integer) or a duration such as '30s', '1m', '1h' or '1d'; got ${got}.`,
    reason: (got: string) => `reason must be a string of at most 1000 characters; got ${got}.`,
    fence: (got: string) =>
      `fence must be a fence shown by inspect() (a non-negative integer); got ${got}.`,
  },
  unsupportedDatabase: (type: string) =>
    `nestjs-rlock does not support the TypeORM driver "${type}". Supported: "better-sqlite3" (SQLite), "postgres" (PostgreSQL, CockroachDB), "mysql" and "mariadb" (MySQL, MariaDB through mysql2).`,
  tableMissing: (table: string) =>
    `The lock table "${table}" or its waiters table "${table}_waiters" does not exist. Either let TypeORM create them (synchronize: true with autoLoadEntities: true, or add ...createRLockEntities() to your entities), ` +
    `or add createRLockMigration() (a new database) or createRLockWaitersMigration() (upgrading from 0.1) to your migrations and run them.`,
  sqliteSelfDeadlock:
    "Self-deadlock: this process holds a write transaction on the SQLite file through TypeORM's connection, and the lock statements run on a connection of their own, which cannot write until that transaction ends. Take the lock before opening the transaction (or outside it).",
  holdLimitExceeded:
    'The holding reached its maxHoldMs: the lock was freed while its holder may still have been running.',
  schemaOutdated: (table: string, version: number, needed: number) =>
    `The lock table "${table}" has schema version ${version}; this version of nestjs-rlock needs version ${needed}. ` +
    `Add createRLockWaitersMigration(${table === 'rlock' ? '' : `'${table}'`}) to your data source's migrations and run them ` +
    `(it creates the waiters table "${table}_waiters" and drops the unused column "wanted_at"), ` +
    `or let TypeORM synchronize the entities of createRLockEntities().`,
  schemaNewer: (table: string, version: number, supported: number) =>
    `The lock table "${table}" has schema version ${version}, newer than the ${supported} this version of nestjs-rlock knows: upgrade nestjs-rlock in every application that uses this table.`,
  dataSourceNotInitialized: 'The TypeORM data source given to RLockModule is not initialized.',
  health: {
    unreachable: (why: string) => `The lock database does not answer: ${why}`,
    tableMissing: 'The lock table is missing.',
    renewalsFailing: (lock: string, why: string) => `Renewing the lease of ${lock} fails: ${why}`,
    timeout: (ms: number) => `no answer within ${ms} ms`,
  },
  cli: {
    usage: `Usage: nestjs-rlock <command> --url <database url> [--table rlock] [options]

Commands:
  status                     every lock: status, holder, fence, expiry, last outcome
  inspect <name>             one lock, with the error its last holder stored
  release <name>             force-release a lock (asks for confirmation; --yes skips)
  purge --older-than <age>   delete rows of free locks unused for <age> (e.g. 7d, 12h, 30m)

Options:
  --url <url>        postgres://…, mysql://…, mariadb://…, sqlite:/path/file.db or a file path
  --table <name>     lock table (default: rlock)
  --json             machine-readable output (status, inspect)
  --yes, -y          release without asking
  --reason <text>    release: reason stored for the next holder
  --help, -h         this help

Exit codes: 0 ok, 1 failed or declined, 2 bad usage or URL, 3 database unreachable,
4 lock table missing, 5 unknown lock.`,
    badArguments: (why: string) => `${why}\nRun "nestjs-rlock --help" for usage.`,
    noCommand: 'No command given.',
    unknownCommand: (command: string) => `Unknown command "${command}".`,
    missingUrl: 'Missing --url <database url>.',
    missingName: (command: string) =>
      `"${command}" needs a lock name: nestjs-rlock ${command} <name> --url …`,
    extraArguments: (extra: string) => `Unexpected argument(s): ${extra}.`,
    missingOlderThan: 'purge needs --older-than <age>, for example --older-than 7d.',
    badDuration: (got: string) =>
      `--older-than must be a number followed by ms, s, m, h, d or w (for example 7d); got "${got}".`,
    badUrl: (url: string) =>
      `Cannot read the database URL ${url}: expected postgres://…, mysql://…, mariadb://…, sqlite:/path/file.db or a file path.`,
    unsupportedScheme: (scheme: string) =>
      `Unsupported database URL scheme "${scheme}": use postgres://, postgresql://, mysql://, mariadb://, sqlite: or a file path.`,
    noSqliteFile: (file: string) => `No SQLite database at ${file}.`,
    unreachable: (url: string, why: string) => `Cannot connect to the database at ${url}: ${why}`,
    tableMissing: (table: string) =>
      `The lock table "${table}" does not exist in this database (check --table, or run the application's migrations).`,
    unknownLock: (name: string) =>
      `Unknown lock "${name}": it was never taken, or its row was purged.`,
    noLocks: (table: string) => `No locks in the table "${table}".`,
    confirmRelease: (name: string, holder: string, fence: number) =>
      `Force-release the lock "${name}" held by ${holder} (fence ${fence})? The holder's work may still be running. [y/N] `,
    needsYes: 'Not asking for confirmation without a terminal: pass --yes to force-release.',
    declined: 'Not released.',
    released: (name: string, holder: string, fence: number) =>
      `Released the lock "${name}" (was held by ${holder}, fence ${fence}); the next holder finds a ForceReleasedError.`,
    notHeld: (name: string) => `The lock "${name}" is not held: nothing to release.`,
    changedHands: (name: string, holder: string, fence: number, now: string, nowFence: number) =>
      `Not released: the lock "${name}" changed hands since it was shown (held by ${holder}, fence ${fence}); it is now held by ${now} (fence ${nowFence}). Run the command again to release that holding.`,
    defaultReason: (who: string) => `Force-released by ${who} with the nestjs-rlock command line.`,
    purged: (count: number, age: string) =>
      `Deleted ${count} row${count === 1 ? '' : 's'} of locks unused for ${age}.`,
    failed: (why: string) => `Failed: ${why}`,
  },
  optionalPeerMissing: (pkg: string, feature: string) =>
    `${feature} needs the package "${pkg}", which is not installed: npm install ${pkg}`,
  decorator: {
    noService: (method: string) =>
      `@WithRemoteLock on ${method} found no RLockService: the class must be a provider or controller created by Nest (not \`new\`), ` +
      'in an application that imports RLockModule.forRoot() (or forRootAsync()).',
    moduleNotVisible: (className: string) =>
      `${className} uses @WithRemoteLock but RLockService is not visible in its module: import RLockModule.forRoot() ` +
      '(it is global unless isGlobal: false; then import RLockModule in that module too).',
    lastErrorWithoutLock: (method: string) =>
      `@LastError() on ${method} is never filled: add @WithRemoteLock to that method.`,
    lockManagerPlacement:
      'LockManager() decorates a parameter of a method, not a constructor parameter or a property.',
    lastErrorPlacement:
      'LastError() decorates a parameter of a method, not a constructor parameter or a property.',
    notAMethod: (what: string) => `@WithRemoteLock decorates a method; got ${what}.`,
    name: (got: string) =>
      `The name of @WithRemoteLock must be a lock name (a string) or a function of the method's arguments returning one; got ${got}.`,
    onLocked: (got: string) => `onLocked must be 'throw' or 'skip'; got ${got}.`,
    notSubscribed: (method: string, waitMs: number) =>
      `the Observable ${method} returned was not subscribed to within ${waitMs} ms, so the lock was released without running it ` +
      '(subscribe at once to the Observable a @WithRemoteLock method returns, or declare Observable<…> as its return type to lock on subscribe)',
  },
  disabled:
    'RLockModule is disabled (forRoot({ disabled: true })): decorated methods run without a lock, and RLockService takes no locks.',
  log: {
    acquired: (
      name: string,
      fence: number,
      waitMs: number,
      outcome: string | null,
      payload?: string,
    ) =>
      `Acquired the lock "${name}" (fence ${fence}) after ${Math.round(waitMs)} ms` +
      (outcome === null || outcome === 'released'
        ? '.'
        : `; the previous holding ended: ${outcome}${payload === undefined ? '' : ` (${payload})`}.`),
    expiredTakeover: (
      name: string,
      fence: number,
      holder: string | null,
      previousFence: number | null,
    ) =>
      `Took over the lock "${name}" (fence ${fence}): the previous holder ${holder ?? 'unknown'} (fence ${previousFence ?? '?'}) let its lease expire without releasing; its work may be half done.`,
    timedOut: (name: string, timeoutMs: number) =>
      `Gave up waiting for the lock "${name}" after ${timeoutMs} ms.`,
    released: (name: string, fence: number, holdMs: number, outcome: string) =>
      `Released the lock "${name}" (fence ${fence}) after ${Math.round(holdMs)} ms${outcome === 'error' ? ' with an error for the next holder' : ''}.`,
    releaseFailed: (name: string, why: string) =>
      `Could not release the lock "${name}"; it stays held until its lease ends: ${why}`,
    renewalFailed: (name: string, why: string) =>
      `Could not renew the lease of the lock "${name}"; trying again while the lease lasts: ${why}`,
    shutdownAbandoned: (names: readonly string[], graceMs: number) =>
      `Shutting down: ${names.length} locked section${names.length === 1 ? '' : 's'} did not finish within ${graceMs} ms (shutdownGraceMs): ` +
      `${names.map((name) => `"${name}"`).join(', ')}. Their signals are aborted and their locks are left to expire.`,
    forceReleased: (name: string, released: boolean, reason: string | undefined) =>
      released
        ? `Force-released the lock "${name}"${reason === undefined ? '' : `: ${reason}`}.`
        : `Force release of the lock "${name}": it was not held.`,
  },
} as const;
