import type { ModuleMetadata } from '@nestjs/common';
import type { ErrorClass } from '../errors/error-codec';

/**
 * Options of `RLockModule.forRoot()`.
 * @publicApi
 */
export interface RLockModuleOptions {
  /** Name of the TypeORM data source holding the lock table. Default: the default data source. */
  dataSource?: string;
  /** Name of the lock table (`name` or `schema.name`). Default: `rlock`. */
  tableName?: string;
  /** Default acquire timeout of `lock()`, `withLock()` and `@WithRemoteLock`, in ms. Default: 30,000. */
  acquireTimeoutMs?: number;
  /** Default lease (ttl): how long a lock outlives a crashed holder, in ms. Renewed every third of it. Default: 30,000. */
  ttlMs?: number;
  /** Bounds of the polling backoff of waiters that have no doorbell (exponential, with jitter), in ms. Default: `{ minMs: 5, maxMs: 200 }`. */
  backoff?: { minMs?: number; maxMs?: number };
  /**
   * Connections the module may open beyond the TypeORM pool, however many names, waiters
   * and held locks the process has (each opened when first needed): the first is a
   * doorbell (a PostgreSQL LISTEN, a MySQL/MariaDB session asleep in `SLEEP()`) through
   * which a release wakes this process at once; the second carries lease renewals, so that
   * they never wait behind lock attempts or a pool the application has filled. `0`:
   * waiters poll and renewals run through the pool. At most 2. Default: 2.
   */
  waitConnections?: number;
  /** Error classes to rebuild `lastError` as, so that `instanceof` works across processes. */
  errors?: ErrorClass[];
  /** Largest stored error JSON, in bytes; larger errors are cut down, never refused. Default: 8,192. */
  maxErrorBytes?: number;
  /** Whether stored errors keep their stack trace. Default: false. */
  includeStack?: boolean;
  /** Whether log lines may show the errors previous holders stored (they may hold private data). Default: false. */
  logStoredErrors?: boolean;
  /** A label for humans naming this instance in the lock table. Default: `host:pid`. */
  holder?: string;
  /** Whether the module is global. Default: true. */
  isGlobal?: boolean;
  /**
   * On application shutdown (`app.close()`, or a signal with `app.enableShutdownHooks()`),
   * how long held locks keep being renewed while their sections finish and release with
   * their real outcomes, in ms. New locks and waiters fail with `ShuttingDownError` at once.
   * Sections still running after it get their `signal` aborted and their locks are left to
   * expire. Default: 5,000.
   */
  shutdownGraceMs?: number;
  /**
   * Turns locking off for `@WithRemoteLock` methods (they run directly, `@LastError()` gets
   * null), for an application's own unit tests. With `forRoot()` the module then needs no
   * TypeORM data source and `RLockService` takes no locks. Default: false.
   */
  disabled?: boolean;
}

/**
 * The part of the options a `forRootAsync()` factory may return: everything except
 * what decides injection tokens (`dataSource`, `tableName`, `isGlobal`).
 * @publicApi
 */
export type RLockRuntimeOptions = Omit<RLockModuleOptions, 'dataSource' | 'tableName' | 'isGlobal'>;

/**
 * Options of `RLockModule.forRootAsync()`.
 * @publicApi
 */
export interface RLockModuleAsyncOptions extends Pick<ModuleMetadata, 'imports'> {
  /** Name of the TypeORM data source holding the lock table. Default: the default data source. */
  dataSource?: string;
  /** Name of the lock table. Default: `rlock`. */
  tableName?: string;
  /** Whether the module is global. Default: true. */
  isGlobal?: boolean;
  /** Providers to inject into `useFactory`. */
  inject?: any[];
  /** Returns the remaining options. */
  useFactory: (...args: any[]) => RLockRuntimeOptions | Promise<RLockRuntimeOptions>;
}
