import type { DataSource } from 'typeorm';
import { RLockConfigurationError } from '../../lib';
import { createDialect } from '../../lib/dialects/create-dialect';

describe('createDialect', () => {
  it.each(['mssql', 'oracle', 'mongodb', 'sqljs'])(
    'fails at startup for the %s driver, naming the supported ones',
    (type) => {
      const source = { options: { type } } as unknown as DataSource;
      expect(() => createDialect(source, 'rlock')).toThrow(RLockConfigurationError);
      expect(() => createDialect(source, 'rlock')).toThrow(
        /better-sqlite3.*postgres.*mysql.*mariadb/,
      );
    },
  );
});
