import type { DataSource } from 'typeorm';
import { PostgresDialect } from '../../lib/dialects/postgres.dialect';

/** A data source whose pool records the statements it is sent and answers `version`. */
function dataSource(type: string, version: string) {
  const sent: string[] = [];
  const master = {
    Client: class {},
    options: {},
    query: async (config: { text: string }) => {
      sent.push(config.text);
      if (config.text.includes('version()')) return { rows: [{ version }], rowCount: 1 };
      if (config.text.includes('next_owner')) return { rows: [{ next_owner: null }], rowCount: 1 };
      return { rows: [], rowCount: 0 };
    },
  };
  const source = { options: { type }, driver: { master } } as unknown as DataSource;
  return { source, sent };
}

describe('PostgresDialect on CockroachDB', () => {
  const release = {
    key: 'k',
    token: 't',
    outcome: 'released' as const,
    error: null,
    handoffLeaseMs: 1_500,
    minHoldMs: null,
  };

  it.each([
    ['cockroachdb', 'PostgreSQL 13.0.0, compiled by Visual C++'],
    ['postgres', 'CockroachDB CCL v23.2.4 (x86_64-pc-linux-gnu, built 2024/04/04)'],
  ])(
    'releases without NOTIFY and opens no doorbell (type %s, server %s)',
    async (type, version) => {
      const { source, sent } = dataSource(type, version);
      const dialect = new PostgresDialect(source, 'rlock');
      await dialect.init();
      expect(dialect.createDoorbell()).toBeUndefined();
      await dialect.release(release);
      const statement = sent.find((text) => text.includes('next_owner'))!;
      expect(statement).toBeDefined();
      expect(statement).not.toMatch(/pg_notify/);
    },
  );

  it('notifies in the release on PostgreSQL', async () => {
    const { source, sent } = dataSource('postgres', 'PostgreSQL 15.19 on x86_64-pc-linux-gnu');
    const dialect = new PostgresDialect(source, 'rlock');
    await dialect.init();
    expect(dialect.createDoorbell()).toBeDefined();
    await dialect.release(release);
    expect(sent.find((text) => text.includes('next_owner'))).toMatch(/pg_notify/);
  });
});
