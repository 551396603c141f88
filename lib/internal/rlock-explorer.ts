import { Injectable, type OnModuleInit } from '@nestjs/common';
import { DiscoveryService, MetadataScanner } from '@nestjs/core';
import { RLockConfigurationError } from '../errors/rlock-configuration.error';
import { MESSAGES } from '../rlock.messages';
import { RLockService } from '../rlock.service';
import {
  LAST_ERROR_PARAMS,
  LOCKED_HOST,
  LOCKED_METHOD,
  methodLabel,
  RLOCK_SERVICE_PROPERTY,
} from './decorator-metadata';

/**
 * At startup, checks every controller and provider that uses `@WithRemoteLock` or
 * `@LastError()`: RLockService must have been injected (the host's module sees
 * RLockModule), and every `@LastError()` parameter must belong to a locked method.
 */
@Injectable()
export class RLockExplorer implements OnModuleInit {
  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
  ) {}

  /** Fails the application's startup with a message naming the fix. */
  onModuleInit(): void {
    const wrappers = [...this.discovery.getControllers(), ...this.discovery.getProviders()];
    for (const wrapper of wrappers) {
      const instance: unknown = wrapper.instance;
      if (!wrapper.isDependencyTreeStatic() || instance === null || typeof instance !== 'object') {
        continue;
      }
      const prototype: object | null = Object.getPrototypeOf(instance);
      if (prototype === null) continue;
      if (
        Reflect.getMetadata(LOCKED_HOST, prototype) === true &&
        !((instance as Record<symbol, unknown>)[RLOCK_SERVICE_PROPERTY] instanceof RLockService)
      ) {
        throw new RLockConfigurationError(
          MESSAGES.decorator.moduleNotVisible(prototype.constructor.name),
        );
      }
      for (const method of this.scanner.getAllMethodNames(prototype)) {
        if (
          Reflect.getMetadata(LAST_ERROR_PARAMS, prototype, method) !== undefined &&
          Reflect.getMetadata(LOCKED_METHOD, prototype, method) !== true
        ) {
          throw new RLockConfigurationError(
            MESSAGES.decorator.lastErrorWithoutLock(methodLabel(prototype, method)),
          );
        }
      }
    }
  }
}
