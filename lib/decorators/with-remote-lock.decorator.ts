import { Inject, Optional } from '@nestjs/common';
import { PROPERTY_DEPS_METADATA } from '@nestjs/common/constants';
import { isObservable } from 'rxjs';
import { InvalidArgumentError } from '../errors/invalid-argument.error';
import {
  copyMethodMetadata,
  LOCKED_HOST,
  LOCKED_METHOD,
  methodLabel,
  RLOCK_SERVICE_PROPERTY,
} from '../internal/decorator-metadata';
import { createLockedMethod } from '../internal/locked-method';
import {
  assertDuration,
  assertOptionalBoolean,
  assertOptionalIsolationLevel,
  assertOptions,
  describe,
  parsePeriod,
} from '../internal/validate';
import { RLOCK_LIMITS } from '../rlock.constants';
import { MESSAGES } from '../rlock.messages';
import { RLockService } from '../rlock.service';
import {
  WITH_REMOTE_LOCK_OPTION_KEYS,
  type WithRemoteLockOptions,
} from './with-remote-lock-options.interface';

/**
 * The decorator `@WithRemoteLock` returns: it accepts methods whose leading parameters match the name function's.
 * @publicApi
 */
export type WithRemoteLockDecorator<A extends unknown[]> = <
  M extends (...args: [...A, ...any[]]) => unknown,
>(
  target: object,
  key: string | symbol,
  descriptor: TypedPropertyDescriptor<M>,
) => TypedPropertyDescriptor<M>;

/**
 * Runs the decorated method of a controller, provider or `@Cron` job while holding the
 * remote lock `name` (a string, or a function of the method's arguments). Success
 * releases it with no error; a throw releases it with that error and rethrows the very
 * same error. Promises are awaited and Observables hold the lock until they complete,
 * error or are unsubscribed from. `acquireTimeoutMs` may be given alone as a number.
 *
 * In an HTTP route handler, running out of acquire time answers `409 Conflict`
 * ({@link LockConflictException}); elsewhere it throws `AcquireTimeoutError`. With
 * `onLocked: 'skip'` the method is not run and `undefined` is returned instead.
 * @publicApi
 */
export function WithRemoteLock<A extends unknown[] = any[]>(
  name: string | ((...args: A) => string),
  options?: number | WithRemoteLockOptions,
): WithRemoteLockDecorator<A> {
  if (typeof name !== 'string' && typeof name !== 'function') {
    throw new InvalidArgumentError('name', MESSAGES.decorator.name(describe(name)));
  }
  const opts = resolveDecoratorOptions(options);
  return (target, key, descriptor) => {
    const original: unknown = descriptor?.value;
    if (typeof original !== 'function') {
      throw new InvalidArgumentError(
        'WithRemoteLock',
        MESSAGES.decorator.notAMethod(describe(original)),
      );
    }
    injectService(target);
    Reflect.defineMetadata(LOCKED_HOST, true, target);
    Reflect.defineMetadata(LOCKED_METHOD, true, target, key);
    const returnType: unknown = Reflect.getMetadata('design:returntype', target, key);
    const wrapper = createLockedMethod(original as (...args: unknown[]) => unknown, {
      name: name as string | ((...args: any[]) => string),
      ...opts,
      target,
      key,
      label: methodLabel(target, key),
      lazy: typeof returnType === 'function' && isObservable(returnType.prototype),
    });
    copyMethodMetadata(original, wrapper);
    descriptor.value = wrapper as unknown as typeof descriptor.value;
    return descriptor;
  };
}

function resolveDecoratorOptions(options: number | WithRemoteLockOptions | undefined) {
  const o: WithRemoteLockOptions =
    typeof options === 'number' ? { acquireTimeoutMs: options } : (options ?? {});
  assertOptions(o, 'WithRemoteLock options', WITH_REMOTE_LOCK_OPTION_KEYS);
  if (o.acquireTimeoutMs !== undefined) assertDuration(o.acquireTimeoutMs, 'acquireTimeoutMs', 0);
  if (o.ttlMs !== undefined) assertDuration(o.ttlMs, 'ttlMs', RLOCK_LIMITS.minTtlMs);
  if (o.onLocked !== undefined && o.onLocked !== 'throw' && o.onLocked !== 'skip') {
    throw new InvalidArgumentError('onLocked', MESSAGES.decorator.onLocked(describe(o.onLocked)));
  }
  assertOptionalBoolean(o.reentrant, 'reentrant');
  if (o.minHoldMs !== undefined) assertDuration(o.minHoldMs, 'minHoldMs', 0);
  if (o.maxHoldMs !== undefined) assertDuration(o.maxHoldMs, 'maxHoldMs', RLOCK_LIMITS.minTtlMs);
  if (o.oncePer !== undefined) parsePeriod(o.oncePer);
  assertOptionalBoolean(o.transactional, 'transactional');
  assertOptionalIsolationLevel(o.isolationLevel, 'isolationLevel');
  return {
    acquireTimeoutMs: o.acquireTimeoutMs,
    ttlMs: o.ttlMs,
    onLocked: o.onLocked ?? 'throw',
    reentrant: o.reentrant,
    minHoldMs: o.minHoldMs,
    maxHoldMs: o.maxHoldMs,
    oncePer: o.oncePer,
    transaction: o.transactional
      ? o.isolationLevel === undefined
        ? {}
        : { isolationLevel: o.isolationLevel }
      : undefined,
  };
}

/** Asks Nest to inject RLockService into a hidden property of every instance (once per class). */
function injectService(target: object): void {
  if (typeof target === 'function') return; // a static method: no instance for Nest to inject into
  const owner = target.constructor;
  const properties: { key: unknown }[] = Reflect.getMetadata(PROPERTY_DEPS_METADATA, owner) ?? [];
  if (properties.some((property) => property.key === RLOCK_SERVICE_PROPERTY)) return;
  Inject(RLockService)(target, RLOCK_SERVICE_PROPERTY);
  Optional()(target, RLOCK_SERVICE_PROPERTY);
}
