/** Metadata (on the prototype and method name) listing the parameters marked `@LastError()`. */
export const LAST_ERROR_PARAMS = Symbol('rlock:last-error-params');

/** Metadata (on the prototype and method name) listing the parameters marked `@LockManager()`. */
export const LOCK_MANAGER_PARAMS = Symbol('rlock:lock-manager-params');

/** Metadata (on the prototype and method name) marking a method wrapped by `@WithRemoteLock`. */
export const LOCKED_METHOD = Symbol('rlock:locked-method');

/** Metadata (on the prototype) marking a class with at least one `@WithRemoteLock` method. */
export const LOCKED_HOST = Symbol('rlock:locked-host');

/** The property of a decorated instance that Nest injects `RLockService` into. */
export const RLOCK_SERVICE_PROPERTY = Symbol('rlock:service');

/**
 * Gives `wrapper` everything decorators wrote on `original` (route, cron, guard,
 * interceptor and custom metadata) and its `name`, so that decorators applied before
 * `@WithRemoteLock` keep working.
 */
export function copyMethodMetadata(original: object, wrapper: object): void {
  for (const key of Reflect.getOwnMetadataKeys(original)) {
    Reflect.defineMetadata(key, Reflect.getOwnMetadata(key, original), wrapper);
  }
  Object.defineProperty(wrapper, 'name', {
    value: (original as { name: string }).name,
    configurable: true,
  });
}

/** `Class.method`, for messages. */
export function methodLabel(target: object, key: string | symbol): string {
  const owner = typeof target === 'function' ? target : target.constructor;
  return `${owner?.name ?? 'anonymous class'}.${String(key)}`;
}
