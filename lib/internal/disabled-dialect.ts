import type { LockDialect } from '../dialects/dialect.interface';
import { RLockConfigurationError } from '../errors/rlock-configuration.error';
import { MESSAGES } from '../rlock.messages';

/**
 * Stands in for a database when `RLockModule.forRoot({ disabled: true })`: starts and
 * stops, and refuses every lock operation with a message that says why.
 */
export class DisabledDialect implements LockDialect {
  readonly database = 'none (RLockModule is disabled)';

  async init(): Promise<boolean> {
    return true;
  }

  async close(): Promise<void> {}

  async schemaVersion(current: number): Promise<number> {
    return current;
  }

  acquire(): Promise<never> {
    return this.refuse();
  }

  extend(): Promise<never> {
    return this.refuse();
  }

  release(): Promise<never> {
    return this.refuse();
  }

  forceRelease(): Promise<never> {
    return this.refuse();
  }

  inspect(): Promise<never> {
    return this.refuse();
  }

  list(): Promise<never> {
    return this.refuse();
  }

  purge(): Promise<never> {
    return this.refuse();
  }

  enqueue(): Promise<never> {
    return this.refuse();
  }

  leaveLine(): Promise<never> {
    return this.refuse();
  }

  renewPlaces(): Promise<never> {
    return this.refuse();
  }

  readLocks(): Promise<never> {
    return this.refuse();
  }

  private async refuse(): Promise<never> {
    throw new RLockConfigurationError(MESSAGES.disabled);
  }
}
