import sjson from 'secure-json-parse';
import { MESSAGES } from '../rlock.messages';
import { AcquireTimeoutError } from './acquire-timeout.error';
import { ForceReleasedError } from './force-released.error';
import { InvalidArgumentError } from './invalid-argument.error';
import { HoldLimitExceededError } from './hold-limit-exceeded.error';
import { LeaseExpiredError } from './lease-expired.error';
import { LockDatabaseError } from './lock-database.error';
import { LockLostError } from './lock-lost.error';
import { LockReentryError } from './lock-reentry.error';
import { RemoteLockError } from './remote-lock.error';
import { RemoteError } from './remote.error';

/** A class whose instances can be rebuilt from a stored outcome. */
export type ErrorClass = abstract new (...args: any[]) => Error;

/** How errors are written to the lock table. */
export interface ErrorEncodeOptions {
  /** Largest stored JSON, in bytes; larger errors are cut down, never refused. */
  maxBytes: number;
  /** Whether to keep the stack trace. */
  includeStack: boolean;
}

/** The shape stored in the `last_error` column. */
interface StoredError {
  type?: string;
  name?: string;
  message?: string;
  code?: unknown;
  stack?: string;
  cause?: StoredError;
  fields?: Record<string, unknown>;
  truncated?: boolean;
}

const RESERVED_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
const OWN_KEYS = new Set(['name', 'message', 'stack', 'cause', 'code']);
/**
 * Where a rebuilt error keeps the stored fields whose names are members it inherits
 * (`toString`, `valueOf`, `hasOwnProperty`, methods of its class, …).
 */
export const SHADOWED_FIELDS = 'shadowedFields';
const MAX_DEPTH = 6;
const MAX_CAUSES = 3;
const TRUNCATION_MARK = '… [truncated]';

const BUILTIN_CLASSES: ErrorClass[] = [
  Error,
  TypeError,
  RangeError,
  SyntaxError,
  ReferenceError,
  EvalError,
  URIError,
  AcquireTimeoutError,
  ForceReleasedError,
  HoldLimitExceededError,
  InvalidArgumentError,
  LeaseExpiredError,
  LockDatabaseError,
  LockLostError,
  LockReentryError,
  RemoteLockError,
  RemoteError,
];

/**
 * Turns thrown values into capped, ASCII-only JSON and back into errors of registered
 * classes. Never throws: a value it cannot read comes back as a {@link RemoteError}.
 */
export class ErrorCodec {
  private readonly classes = new Map<string, ErrorClass>();

  constructor(
    registered: readonly ErrorClass[],
    private readonly options: ErrorEncodeOptions,
  ) {
    for (const cls of [...BUILTIN_CLASSES, ...registered]) {
      this.classes.set(cls.name, cls);
    }
  }

  /** Encodes any thrown value; `undefined`/`null` are encoded as a non-Error throw. */
  encode(thrown: unknown): string {
    let stored: StoredError;
    try {
      stored = this.toStored(thrown, 0, new WeakSet());
    } catch {
      // A value whose reading throws (a hostile Proxy, a throwing getter): never fail the unlock.
      stored = {
        type: 'Error',
        name: 'Error',
        message: MESSAGES.nonErrorThrown('an unreadable value'),
      };
    }
    return this.fit(stored);
  }

  /** Rebuilds an error; never throws. */
  decode(json: string): Error {
    let parsed: unknown;
    try {
      parsed = sjson.parse(json, undefined, { protoAction: 'remove', constructorAction: 'remove' });
    } catch {
      return new RemoteError(MESSAGES.unreadableStoredError);
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      return new RemoteError(MESSAGES.unreadableStoredError);
    }
    return this.fromStored(parsed as StoredError, 0);
  }

  private toStored(thrown: unknown, causes: number, seen: WeakSet<object>): StoredError {
    if (thrown instanceof Error) {
      seen.add(thrown);
      const stored: StoredError = {
        type: className(thrown),
        name: typeof thrown.name === 'string' ? thrown.name : 'Error',
        message: typeof thrown.message === 'string' ? thrown.message : String(thrown.message),
      };
      const code = (thrown as { code?: unknown }).code;
      if (code !== undefined) stored.code = jsonSafe(code, 1, seen);
      const fields: Record<string, unknown> = {};
      let hasFields = false;
      for (const key of Object.keys(thrown)) {
        if (OWN_KEYS.has(key) || RESERVED_KEYS.has(key)) continue;
        let value: unknown;
        try {
          value = jsonSafe((thrown as unknown as Record<string, unknown>)[key], 1, seen);
        } catch {
          continue; // a getter that throws: leave the field out
        }
        if (value !== undefined) {
          fields[key] = value;
          hasFields = true;
        }
      }
      if (hasFields) stored.fields = fields;
      if (this.options.includeStack && typeof thrown.stack === 'string')
        stored.stack = thrown.stack;
      if (thrown.cause !== undefined && causes < MAX_CAUSES && !isSeen(thrown.cause, seen)) {
        stored.cause = this.toStored(thrown.cause, causes + 1, seen);
      }
      return stored;
    }
    if (typeof thrown === 'string') {
      return { type: 'Error', name: 'Error', message: thrown };
    }
    if (thrown !== null && typeof thrown === 'object') {
      const record = thrown as Record<string, unknown>;
      const message =
        typeof record.message === 'string'
          ? record.message
          : MESSAGES.nonErrorThrown(describeKind(thrown));
      const stored: StoredError = {
        type: 'Object',
        name: typeof record.name === 'string' ? record.name : 'Error',
        message,
      };
      if (record.code !== undefined) stored.code = jsonSafe(record.code, 1, seen);
      const fields = jsonSafe(
        Object.fromEntries(
          Object.entries(record).filter(([k]) => !OWN_KEYS.has(k) && !RESERVED_KEYS.has(k)),
        ),
        0,
        seen,
      ) as Record<string, unknown> | undefined;
      if (fields && Object.keys(fields).length > 0) stored.fields = fields;
      return stored;
    }
    return {
      type: 'Error',
      name: 'Error',
      message:
        thrown === undefined || thrown === null
          ? MESSAGES.nonErrorThrown(String(thrown))
          : String(thrown),
    };
  }

  /** Serializes, dropping the least useful parts until the JSON fits the cap. */
  private fit(stored: StoredError): string {
    const max = this.options.maxBytes;
    let json = asciiJson(stored);
    if (json.length <= max) return json;
    const cut: StoredError = { ...stored, truncated: true };
    const steps: Array<() => void> = [
      () => delete cut.stack,
      () => delete cut.cause,
      () => delete cut.fields,
      () => delete cut.code,
    ];
    for (const step of steps) {
      step();
      json = asciiJson(cut);
      if (json.length <= max) return json;
    }
    // Only name, type and message are left: shorten the message to fit.
    const message = cut.message ?? '';
    cut.name = (cut.name ?? 'Error').slice(0, 200);
    cut.type = (cut.type ?? 'Error').slice(0, 200);
    let low = 0;
    let high = message.length;
    while (low < high) {
      const mid = Math.ceil((low + high) / 2);
      cut.message = message.slice(0, mid) + TRUNCATION_MARK;
      if (asciiJson(cut).length <= max) low = mid;
      else high = mid - 1;
    }
    cut.message = message.slice(0, low) + TRUNCATION_MARK;
    return asciiJson(cut);
  }

  private fromStored(stored: StoredError, depth: number): Error {
    const name = typeof stored.name === 'string' ? stored.name : 'Error';
    const message = typeof stored.message === 'string' ? stored.message : '';
    const type = typeof stored.type === 'string' ? stored.type : name;
    const cls = this.classes.get(type) ?? this.classes.get(name) ?? RemoteError;
    const error = Object.create(cls.prototype) as Error;
    define(error, 'message', message);
    if (name !== error.name) define(error, 'name', name);
    if (stored.code !== undefined) define(error, 'code', stored.code);
    else if (cls === RemoteError) define(error, 'code', 'RLOCK_REMOTE_ERROR');
    if (stored.fields && typeof stored.fields === 'object' && !Array.isArray(stored.fields)) {
      // A field named after a member the error inherits (toString, valueOf, hasOwnProperty,
      // a method of its class, …) would shadow it and break the error (String(error)
      // throws): such fields are kept in `shadowedFields` instead.
      const shadowed: Record<string, unknown> = {};
      let hasShadowed = false;
      for (const [key, value] of Object.entries(stored.fields)) {
        if (RESERVED_KEYS.has(key) || OWN_KEYS.has(key)) continue;
        if (key in error) {
          define(shadowed, key, value);
          hasShadowed = true;
        } else {
          define(error, key, value);
        }
      }
      if (hasShadowed && !(SHADOWED_FIELDS in error)) define(error, SHADOWED_FIELDS, shadowed);
    }
    if (stored.truncated === true) define(error, 'truncated', true);
    if (stored.cause && typeof stored.cause === 'object' && depth < MAX_CAUSES) {
      define(error, 'cause', this.fromStored(stored.cause, depth + 1));
    }
    define(
      error,
      'stack',
      typeof stored.stack === 'string'
        ? stored.stack
        : `${name}: ${message}\n    at <stored by a previous holder of the lock>`,
    );
    return error;
  }
}

function define(target: object, key: string, value: unknown): void {
  Object.defineProperty(target, key, {
    value,
    writable: true,
    configurable: true,
    enumerable: !['message', 'stack', 'name', 'cause'].includes(key),
  });
}

/** The name of the class of `value` (read from its prototype: an own `constructor` field does not count). */
function className(value: object): string {
  const constructor = (Object.getPrototypeOf(value) as { constructor?: unknown } | null)
    ?.constructor;
  const name = typeof constructor === 'function' ? constructor.name : undefined;
  return typeof name === 'string' && name !== '' ? name : 'Error';
}

function isSeen(value: unknown, seen: WeakSet<object>): boolean {
  return typeof value === 'object' && value !== null && seen.has(value);
}

function describeKind(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'a plain object' : typeof value;
}

/** A copy of `value` that JSON can hold: no cycles, functions, symbols or bigints. */
function jsonSafe(value: unknown, depth: number, seen: WeakSet<object>): unknown {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : String(value);
    case 'bigint':
      return value.toString();
    case 'undefined':
    case 'function':
    case 'symbol':
      return undefined;
  }
  if (value === null) return null;
  const object = value as object;
  if (seen.has(object)) return '[Circular]';
  if (depth >= MAX_DEPTH) return '[Object]';
  if (object instanceof Date) {
    return Number.isNaN(object.getTime()) ? null : object.toISOString();
  }
  if (ArrayBuffer.isView(object)) return `[${object.constructor.name}]`;
  seen.add(object);
  try {
    if (Array.isArray(object)) {
      return object.slice(0, 100).map((item) => jsonSafe(item, depth + 1, seen) ?? null);
    }
    if (object instanceof Error) {
      return { name: object.name, message: object.message };
    }
    const result: Record<string, unknown> = {};
    for (const key of Object.keys(object)) {
      if (RESERVED_KEYS.has(key)) continue;
      let item: unknown;
      try {
        item = (object as Record<string, unknown>)[key];
      } catch {
        continue;
      }
      const safe = jsonSafe(item, depth + 1, seen);
      if (safe !== undefined) result[key] = safe;
    }
    return result;
  } finally {
    seen.delete(object);
  }
}

/** JSON with every non-ASCII character escaped: safe in any column character set. */
function asciiJson(value: unknown): string {
  return JSON.stringify(value).replace(
    /[\u007f-\uffff]/g,
    (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'),
  );
}
