import { InvalidArgumentError } from '../errors/invalid-argument.error';
import { LOCK_MANAGER_PARAMS } from '../internal/decorator-metadata';
import { MESSAGES } from '../rlock.messages';

/**
 * Marks the parameter of a `@WithRemoteLock(name, { transactional: true })` method that
 * receives the `EntityManager` of the section's transaction at every call, whoever calls
 * the method: the value a caller passes in that position is replaced (`undefined` when
 * the section is not transactional, or locking is disabled).
 * @publicApi
 */
export function LockManager(): ParameterDecorator {
  return (target, key, index) => {
    if (key === undefined) {
      throw new InvalidArgumentError('LockManager', MESSAGES.decorator.lockManagerPlacement);
    }
    const params: number[] = Reflect.getOwnMetadata(LOCK_MANAGER_PARAMS, target, key) ?? [];
    Reflect.defineMetadata(LOCK_MANAGER_PARAMS, [...params, index], target, key);
  };
}
