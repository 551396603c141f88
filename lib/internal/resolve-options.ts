import { hostname } from 'node:os';
import type { ErrorClass } from '../errors/error-codec';
import { InvalidArgumentError } from '../errors/invalid-argument.error';
import type { RLockModuleOptions } from '../interfaces/rlock-module-options.interface';
import { DEFAULT_TABLE_NAME, RLOCK_DEFAULTS, RLOCK_LIMITS } from '../rlock.constants';
import { MESSAGES } from '../rlock.messages';
import {
  assertDuration,
  assertHolder,
  assertOptionalBoolean,
  assertOptions,
  assertTableName,
  describe,
} from './validate';

/** Module options after validation, with every default filled in. */
export interface ResolvedRLockOptions {
  dataSource: string | undefined;
  tableName: string;
  acquireTimeoutMs: number;
  ttlMs: number;
  backoffMinMs: number;
  backoffMaxMs: number;
  waitConnections: number;
  errors: ErrorClass[];
  maxErrorBytes: number;
  includeStack: boolean;
  /** Whether log lines may show the errors stored by previous holders. */
  logStoredErrors?: boolean;
  holder: string;
  disabled: boolean;
  /** How long shutdown lets held locks' sections finish (renewing them) before abandoning them. */
  shutdownGraceMs: number;
}

const MODULE_OPTION_KEYS = [
  'dataSource',
  'tableName',
  'acquireTimeoutMs',
  'ttlMs',
  'backoff',
  'waitConnections',
  'errors',
  'maxErrorBytes',
  'includeStack',
  'logStoredErrors',
  'holder',
  'isGlobal',
  'disabled',
  'shutdownGraceMs',
] as const;

/** Validates module options (throws InvalidArgumentError) and fills in the defaults. */
export function resolveOptions(options: RLockModuleOptions = {}): ResolvedRLockOptions {
  assertOptions(options, 'RLockModule options', MODULE_OPTION_KEYS);
  const o = options ?? {};
  if (o.dataSource !== undefined && typeof o.dataSource !== 'string') {
    throw new InvalidArgumentError(
      'dataSource',
      `dataSource must be the name of a TypeORM data source; got ${describe(o.dataSource)}.`,
    );
  }
  const tableName = o.tableName ?? DEFAULT_TABLE_NAME;
  assertTableName(tableName);
  const acquireTimeoutMs = o.acquireTimeoutMs ?? RLOCK_DEFAULTS.acquireTimeoutMs;
  assertDuration(acquireTimeoutMs, 'acquireTimeoutMs', 0);
  const ttlMs = o.ttlMs ?? RLOCK_DEFAULTS.ttlMs;
  assertDuration(ttlMs, 'ttlMs', RLOCK_LIMITS.minTtlMs);
  assertOptions(o.backoff, 'backoff', ['minMs', 'maxMs']);
  const backoffMinMs = o.backoff?.minMs ?? RLOCK_DEFAULTS.backoffMinMs;
  assertDuration(backoffMinMs, 'backoff.minMs', 1, 60_000);
  const backoffMaxMs = o.backoff?.maxMs ?? Math.max(RLOCK_DEFAULTS.backoffMaxMs, backoffMinMs);
  assertDuration(backoffMaxMs, 'backoff.maxMs', backoffMinMs, 60_000);
  const waitConnections = o.waitConnections ?? RLOCK_DEFAULTS.waitConnections;
  assertDuration(
    waitConnections,
    'waitConnections',
    0,
    RLOCK_LIMITS.maxWaitConnections,
    'connections',
  );
  const errors = o.errors ?? [];
  if (
    !Array.isArray(errors) ||
    errors.some(
      (cls) => typeof cls !== 'function' || !(cls.prototype instanceof Error || cls === Error),
    )
  ) {
    throw new InvalidArgumentError('errors', MESSAGES.invalid.errorClasses(describe(errors)));
  }
  const maxErrorBytes = o.maxErrorBytes ?? RLOCK_DEFAULTS.maxErrorBytes;
  assertDuration(
    maxErrorBytes,
    'maxErrorBytes',
    RLOCK_LIMITS.minErrorBytes,
    RLOCK_LIMITS.maxErrorBytes,
    'bytes',
  );
  assertOptionalBoolean(o.includeStack, 'includeStack');
  assertOptionalBoolean(o.logStoredErrors, 'logStoredErrors');
  assertOptionalBoolean(o.isGlobal, 'isGlobal');
  assertOptionalBoolean(o.disabled, 'disabled');
  const shutdownGraceMs = o.shutdownGraceMs ?? RLOCK_DEFAULTS.shutdownGraceMs;
  assertDuration(shutdownGraceMs, 'shutdownGraceMs', 0);
  const holder = o.holder ?? `${hostname()}:${process.pid}`;
  assertHolder(holder);
  return {
    dataSource: o.dataSource,
    tableName,
    acquireTimeoutMs,
    ttlMs,
    backoffMinMs,
    backoffMaxMs,
    waitConnections,
    errors: [...errors],
    maxErrorBytes,
    includeStack: o.includeStack ?? RLOCK_DEFAULTS.includeStack,
    logStoredErrors: o.logStoredErrors ?? false,
    holder,
    disabled: o.disabled ?? false,
    shutdownGraceMs,
  };
}
