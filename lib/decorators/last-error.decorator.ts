import { InvalidArgumentError } from '../errors/invalid-argument.error';
import { LAST_ERROR_PARAMS } from '../internal/decorator-metadata';
import { MESSAGES } from '../rlock.messages';

/**
 * Marks the parameter of a `@WithRemoteLock` method that receives the previous holder's
 * error (`lock.lastError`, or `null`) at every call, whoever calls the method: the value
 * a caller passes in that position is replaced.
 * @publicApi
 */
export function LastError(): ParameterDecorator {
  return (target, key, index) => {
    if (key === undefined) {
      throw new InvalidArgumentError('LastError', MESSAGES.decorator.lastErrorPlacement);
    }
    const params: number[] = Reflect.getOwnMetadata(LAST_ERROR_PARAMS, target, key) ?? [];
    Reflect.defineMetadata(LAST_ERROR_PARAMS, [...params, index], target, key);
  };
}
