import { InvalidArgumentError } from '../errors/invalid-argument.error';
import { durationMs } from './duration';
import { RLOCK_LIMITS } from '../rlock.constants';
import { MESSAGES } from '../rlock.messages';

/** A short, safe description of a rejected value for an error message. */
export function describe(value: unknown): string {
  if (typeof value === 'string') {
    const shown = value.length > 40 ? `${value.slice(0, 40)}…` : value;
    return `${JSON.stringify(shown)} (${value.length} characters)`;
  }
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') {
    return `${typeof value} ${String(value)}`;
  }
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'function') return 'a function';
  return typeof value === 'object' ? 'an object' : typeof value;
}

function codePoints(value: string): number {
  let count = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < value.length) i++;
    count++;
  }
  return count;
}

function isPlainText(value: unknown, max: number): value is string {
  return (
    typeof value === 'string' &&
    value.length > 0 &&
    codePoints(value) <= max &&
    !value.includes('\u0000') &&
    value.isWellFormed()
  );
}

/** Lock names: 1–255 code points, well-formed Unicode, no NUL (PostgreSQL cannot store it). */
export function assertLockName(name: unknown): asserts name is string {
  if (!isPlainText(name, RLOCK_LIMITS.maxNameLength)) {
    throw new InvalidArgumentError('name', MESSAGES.invalid.name(describe(name)));
  }
}

/** Holder labels: the same rules as names. */
export function assertHolder(holder: unknown): asserts holder is string {
  if (!isPlainText(holder, RLOCK_LIMITS.maxHolderLength)) {
    throw new InvalidArgumentError('holder', MESSAGES.invalid.holder(describe(holder)));
  }
}

/** An integer number of milliseconds (or of `unit`) within [min, max]. */
export function assertDuration(
  value: unknown,
  argument: string,
  min: number,
  max: number = RLOCK_LIMITS.maxDurationMs,
  unit = 'milliseconds',
): asserts value is number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(
      argument,
      MESSAGES.invalid.duration(argument, unit, min, max, describe(value)),
    );
  }
}

/** A plain options object (or undefined) whose keys are all known. */
export function assertOptions(
  value: unknown,
  argument: string,
  known: readonly string[],
): asserts value is Record<string, unknown> | undefined {
  if (value === undefined) return;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new InvalidArgumentError(argument, MESSAGES.invalid.options(argument, describe(value)));
  }
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) {
      throw new InvalidArgumentError(
        `${argument}.${key}`,
        MESSAGES.invalid.unknownOption(argument, key, known),
      );
    }
  }
}

/** A boolean or undefined. */
export function assertOptionalBoolean(value: unknown, argument: string): void {
  if (value !== undefined && typeof value !== 'boolean') {
    throw new InvalidArgumentError(argument, MESSAGES.invalid.boolean(argument, describe(value)));
  }
}

/** A transaction isolation level TypeORM knows, or undefined. */
export function assertOptionalIsolationLevel(value: unknown, argument: string): void {
  const levels: unknown[] = [
    'READ UNCOMMITTED',
    'READ COMMITTED',
    'REPEATABLE READ',
    'SERIALIZABLE',
  ];
  if (value !== undefined && !levels.includes(value)) {
    throw new InvalidArgumentError(argument, MESSAGES.invalid.isolationLevel(describe(value)));
  }
}

/** An AbortSignal or undefined. */
export function assertOptionalSignal(value: unknown, argument: string): void {
  if (value !== undefined && !(value instanceof AbortSignal)) {
    throw new InvalidArgumentError(argument, MESSAGES.invalid.signal(argument, describe(value)));
  }
}

/** A function. */
export function assertFunction(
  value: unknown,
  argument: string,
): asserts value is (...args: never[]) => unknown {
  if (typeof value !== 'function') {
    throw new InvalidArgumentError(argument, MESSAGES.invalid.function(argument, describe(value)));
  }
}

/**
 * `name` or `schema.name`, SQL identifiers: the schema of at most 63 characters, the table
 * of at most 49 (its waiters table and their indexes add up to 14 more).
 */
export function assertTableName(value: unknown): asserts value is string {
  if (
    typeof value !== 'string' ||
    !/^([A-Za-z_][A-Za-z0-9_]{0,62}\.)?[A-Za-z_][A-Za-z0-9_]{0,48}$/.test(value)
  ) {
    throw new InvalidArgumentError('tableName', MESSAGES.invalid.tableName(describe(value)));
  }
}

/** The period of `oncePer`: milliseconds (a positive integer) or a duration such as `'1m'`. */
export function parsePeriod(value: unknown): number {
  const ms =
    typeof value === 'number'
      ? value
      : typeof value === 'string'
        ? (durationMs(value) ?? NaN)
        : NaN;
  if (!Number.isSafeInteger(ms) || ms < 1 || ms > RLOCK_LIMITS.maxDurationMs) {
    throw new InvalidArgumentError('oncePer', MESSAGES.invalid.period(describe(value)));
  }
  return ms;
}
