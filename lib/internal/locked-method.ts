import { METHOD_METADATA } from '@nestjs/common/constants';
import { isObservable, Observable, throwError, type Subscriber } from 'rxjs';
import type { EntityManager } from 'typeorm';
import type { IsolationLevel } from 'typeorm/driver/types/IsolationLevel';
import { AcquireTimeoutError } from '../errors/acquire-timeout.error';
import { LockConflictException } from '../errors/lock-conflict.exception';
import { LockLostError } from '../errors/lock-lost.error';
import { RLockConfigurationError } from '../errors/rlock-configuration.error';
import type { LockOptions } from '../interfaces/lock-options.interface';
import type { RemoteLock } from '../remote-lock';
import { MESSAGES } from '../rlock.messages';
import { RLockService } from '../rlock.service';
import {
  LAST_ERROR_PARAMS,
  LOCK_MANAGER_PARAMS,
  RLOCK_SERVICE_PROPERTY,
} from './decorator-metadata';
import { runInLockScope } from './lock-context';
import { assertLockName } from './validate';

type Method = (this: unknown, ...args: unknown[]) => unknown;

/** Shortest time an Observable returned holding the lock waits for its subscriber. */
const MIN_SUBSCRIBE_WAIT_MS = 1_000;

/** A `@WithRemoteLock` declaration, validated. */
export interface LockedMethodConfig {
  /** The lock name, or a function of the method's arguments returning it. */
  name: string | ((...args: any[]) => string);
  acquireTimeoutMs: number | undefined;
  ttlMs: number | undefined;
  onLocked: 'throw' | 'skip';
  reentrant: boolean | undefined;
  /** Hold bounds and once per period (see `LockOptions`). */
  minHoldMs?: number;
  maxHoldMs?: number;
  oncePer?: number | string;
  /** A transactional section, with its isolation level (see `WithLockOptions.transactional`). */
  transaction?: { isolationLevel?: IsolationLevel };
  /** The prototype (or class, for a static method) and name of the decorated method. */
  target: object;
  key: string | symbol;
  /** `Class.method`, for messages. */
  label: string;
  /** The method declares an Observable return type: lock when the result is subscribed to. */
  lazy: boolean;
  /** Cached at the first call: whether the method is a route handler (HTTP answers 409). */
  isRoute?: boolean;
  /** Cached at the first call: indexes of the `@LastError()` parameters (null: none). */
  lastErrorParams?: number[] | null;
  /** Cached at the first call: indexes of the `@LockManager()` parameters (null: none). */
  managerParams?: number[] | null;
}

/**
 * Builds the function that replaces a `@WithRemoteLock` method: it takes the lock, puts
 * `lastError` in the `@LastError()` parameters, runs the method in the locked section
 * (`RLockService.runHolding`: released with the method's error, which is rethrown
 * unchanged) and, when the method returns an Observable, holds the lock until that
 * Observable completes, errors or is unsubscribed from. An Observable that nobody
 * subscribes to within the method's acquire timeout (at least a second) releases the lock
 * with a LockLostError, which later subscribers get too: it never holds the lock for ever.
 */
export function createLockedMethod(original: Method, config: LockedMethodConfig): Method {
  const wrapper = function (this: unknown, ...args: unknown[]): unknown {
    const service = serviceOf(this);
    if (service === undefined) {
      // Fail the way the method's callers listen: a rejected Promise or an erroring Observable.
      const error = new RLockConfigurationError(MESSAGES.decorator.noService(config.label));
      return config.lazy ? throwError(() => error) : Promise.reject(error);
    }
    if (service.disabled) {
      return original.apply(this, withLastError(config, args, null, undefined));
    }
    // Route metadata is complete once the app runs: look it up once per method.
    const isRoute = (config.isRoute ??=
      isRouteHandler(wrapper) || isRouteHandler(currentMethod(this, config.key)));
    const call = new LockedCall(service, original, config, this, args, isRoute);
    return config.lazy ? call.onSubscribe() : call.now();
  };
  return wrapper;
}

/** The RLockService Nest injected into the host (see `@WithRemoteLock`), if any. */
function serviceOf(host: unknown): RLockService | undefined {
  const service =
    host !== null && typeof host === 'object'
      ? (host as Record<symbol, unknown>)[RLOCK_SERVICE_PROPERTY]
      : undefined;
  return service instanceof RLockService ? service : undefined;
}

/**
 * Whether Nest's request-method metadata (`@Get`, `@Post`, …) is on `method`. It is on our
 * wrapper whatever the decorator order; the host's current method covers a wrapping
 * decorator applied above ours.
 */
function isRouteHandler(method: unknown): boolean {
  return typeof method === 'function' && Reflect.hasOwnMetadata(METHOD_METADATA, method);
}

function currentMethod(host: unknown, key: string | symbol): unknown {
  return host !== null && typeof host === 'object'
    ? (host as Record<string | symbol, unknown>)[key]
    : undefined;
}

function withLastError(
  config: LockedMethodConfig,
  args: unknown[],
  value: Error | null,
  manager: EntityManager | undefined,
): unknown[] {
  // Parameter decorators have all run before the first call: read them once.
  const params = (config.lastErrorParams ??=
    (Reflect.getMetadata(LAST_ERROR_PARAMS, config.target, config.key) as number[] | undefined) ??
    null);
  const managers = (config.managerParams ??=
    (Reflect.getMetadata(LOCK_MANAGER_PARAMS, config.target, config.key) as number[] | undefined) ??
    null);
  if (params === null && managers === null) return args;
  const copy = [...args];
  for (const index of params ?? []) copy[index] = value;
  for (const index of managers ?? []) copy[index] = manager;
  return copy;
}

/** One call of a locked method. */
class LockedCall {
  constructor(
    private readonly service: RLockService,
    private readonly original: Method,
    private readonly config: LockedMethodConfig,
    private readonly host: unknown,
    private readonly args: unknown[],
    private readonly isRoute: boolean,
  ) {}

  /** Promise style: resolves with the method's result (a lock-holding Observable if it returned one). */
  async now(): Promise<unknown> {
    const lock = await this.acquire();
    if (lock === null) return undefined;
    return new Promise((resolve, reject) => {
      const outcome: Promise<unknown> = this.service.runHolding(
        lock,
        (_, manager) => {
          const result = this.run(lock, manager);
          if (!isObservable(result)) return result;
          return new Promise<void>((finished, failed) => {
            let subscribed = false;
            // Nobody subscribed in time: the lock was released with this error.
            let unsubscribed: LockLostError | undefined;
            const waitMs = Math.max(
              MIN_SUBSCRIBE_WAIT_MS,
              this.config.acquireTimeoutMs ?? this.service.defaultAcquireTimeoutMs,
            );
            const timer = setTimeout(() => {
              unsubscribed = new LockLostError(
                lock.name,
                MESSAGES.decorator.notSubscribed(this.config.label, waitMs),
              );
              failed(unsubscribed);
            }, waitMs);
            timer.unref();
            resolve(
              new Observable((subscriber) => {
                if (unsubscribed) return subscriber.error(unsubscribed);
                if (subscribed) return result.subscribe(subscriber);
                subscribed = true;
                clearTimeout(timer);
                runInLockScope(lock, () => relay(result, subscriber)).then(finished, failed);
                outcome.then(
                  () => subscriber.complete(),
                  (error: unknown) => subscriber.error(error),
                );
                return undefined;
              }),
            );
          });
        },
        this.config.transaction,
      );
      outcome.then(resolve, reject);
    });
  }

  /** Observable style: takes the lock when subscribed to, releases it when the result finishes. */
  onSubscribe(): Observable<unknown> {
    return new Observable((subscriber) => {
      const unsubscribed = new AbortController(); // stops waiting for the lock
      const work = async () => {
        const lock = await this.acquire(unsubscribed.signal);
        if (lock === null) return;
        await this.service.runHolding(
          lock,
          (_, manager) => {
            if (subscriber.closed) return undefined;
            const result = this.run(lock, manager);
            if (isObservable(result)) return relay(result, subscriber);
            return Promise.resolve(result).then((value) => subscriber.next(value));
          },
          this.config.transaction,
        );
      };
      work().then(
        () => subscriber.complete(),
        (error: unknown) => subscriber.error(error),
      );
      return () => unsubscribed.abort();
    });
  }

  private run(lock: RemoteLock, manager: EntityManager | undefined): unknown {
    return this.original.apply(
      this.host,
      withLastError(this.config, this.args, lock.lastError, manager),
    );
  }

  private async acquire(signal?: AbortSignal): Promise<RemoteLock | null> {
    const { config, service } = this;
    const name = typeof config.name === 'function' ? config.name(...this.args) : config.name;
    assertLockName(name);
    let options: LockOptions | undefined;
    const { minHoldMs, maxHoldMs, oncePer } = config;
    if (
      config.ttlMs !== undefined ||
      config.reentrant !== undefined ||
      signal !== undefined ||
      minHoldMs !== undefined ||
      maxHoldMs !== undefined ||
      oncePer !== undefined
    ) {
      options = {};
      if (config.ttlMs !== undefined) options.ttlMs = config.ttlMs;
      if (config.reentrant !== undefined) options.reentrant = config.reentrant;
      if (signal !== undefined) options.signal = signal;
      if (minHoldMs !== undefined) options.minHoldMs = minHoldMs;
      if (maxHoldMs !== undefined) options.maxHoldMs = maxHoldMs;
      if (oncePer !== undefined) options.oncePer = oncePer;
    }
    try {
      if (config.onLocked === 'skip' && config.acquireTimeoutMs === undefined) {
        return await service.tryLock(name, options);
      }
      return await service.lock(name, config.acquireTimeoutMs, options);
    } catch (error) {
      if (!(error instanceof AcquireTimeoutError)) throw error;
      if (config.onLocked === 'skip') return null;
      if (this.isRoute) throw new LockConflictException(error);
      throw error;
    }
  }
}

/**
 * Forwards `source`'s values to `subscriber`; settles when `source` completes (resolves),
 * errors (rejects) or `subscriber` unsubscribes (resolves). The caller forwards the end.
 */
function relay<T>(source: Observable<T>, subscriber: Subscriber<T>): Promise<void> {
  return new Promise((resolve, reject) => {
    const subscription = source.subscribe({
      next: (value) => subscriber.next(value),
      error: reject,
      complete: () => resolve(),
    });
    subscriber.add(() => {
      subscription.unsubscribe();
      resolve();
    });
  });
}
