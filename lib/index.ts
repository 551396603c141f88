export { RLockModule } from './rlock.module';
export { RLockService } from './rlock.service';
export { RemoteLock } from './remote-lock';
export {
  WithRemoteLock,
  type WithRemoteLockDecorator,
} from './decorators/with-remote-lock.decorator';
export type { WithRemoteLockOptions } from './decorators/with-remote-lock-options.interface';
export { LastError } from './decorators/last-error.decorator';
export { LockManager } from './decorators/lock-manager.decorator';
export { LockConflictException } from './errors/lock-conflict.exception';
export {
  RLOCK_MODULE_OPTIONS,
  RLOCK_DEFAULTS,
  RLOCK_LIMITS,
  DEFAULT_TABLE_NAME,
} from './rlock.constants';
export * from './errors';
export type { ErrorClass } from './errors/error-codec';
export type {
  RLockModuleOptions,
  RLockModuleAsyncOptions,
  RLockRuntimeOptions,
} from './interfaces/rlock-module-options.interface';
export type { LockOptions, WithLockOptions } from './interfaces/lock-options.interface';
export type { ForceReleaseOptions } from './interfaces/force-release-options.interface';
export type { LockState, LockOutcome } from './interfaces/lock-state.interface';
export type * from './events/rlock-event.interface';
export { createRLockEntity, createRLockEntities, type RLockRow } from './entities/rlock.entity';
export { createRLockWaiterEntity, type RLockWaiterRow } from './entities/rlock-waiter.entity';
export { createRLockMigration } from './migrations/create-rlock-table.migration';
export { createRLockWaitersMigration } from './migrations/create-rlock-waiters.migration';
