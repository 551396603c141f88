import type { DataSource } from 'typeorm';
import type { TestDatabase } from '../../support/databases';

/**
 * Counts the statements this process sends to the lock database, at the driver (a probe,
 * not a mock: every statement still runs). Used to prove that rejected arguments cause
 * no database call at all.
 */
export class StatementCounter {
  count = 0;
  private readonly restore: Array<() => void> = [];

  constructor(dataSource: DataSource, kind: TestDatabase['kind']) {
    const driver = dataSource.driver as any;
    if (kind === 'postgres') this.wrap(driver.master, 'query');
    else if (kind === 'mariadb') this.wrap(driver.pool, 'query');
    else {
      const statement = Object.getPrototypeOf(driver.databaseConnection.prepare('SELECT 1'));
      for (const method of ['get', 'all', 'run']) this.wrap(statement, method);
    }
  }

  /** Puts the driver's methods back. */
  dispose(): void {
    for (const undo of this.restore) undo();
  }

  private wrap(target: any, method: string): void {
    const original = target[method];
    const own = Object.prototype.hasOwnProperty.call(target, method);
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const counter = this;
    target[method] = function (this: unknown, ...args: unknown[]) {
      counter.count++;
      return original.apply(this, args);
    };
    this.restore.push(() => {
      if (own) target[method] = original;
      else delete target[method];
    });
  }
}
