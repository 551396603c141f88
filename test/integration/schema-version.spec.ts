import { DataSource, Table, type MigrationInterface, type QueryRunner } from 'typeorm';
import { createRLockMigration, createRLockWaitersMigration } from '../../lib';
import { RLOCK_COLUMNS } from '../../lib/entities/rlock.entity';
import { lockKey } from '../../lib/internal/lock-key';
import { createTestApp } from '../support/app';
import { testDatabases, uniqueTableName, type TestDatabase } from '../support/databases';

/** The lock table as nestjs-rlock 0.1 created it (schema version 1: `wanted_at`, no waiters table). */
function version1Migration(tableName: string): new () => MigrationInterface {
  return class CreateVersion1Table1764201600000 implements MigrationInterface {
    name = `CreateVersion1Table${tableName}1764201600000`;
    async up(queryRunner: QueryRunner): Promise<void> {
      await queryRunner.createTable(
        new Table({
          name: tableName,
          columns: [
            ...RLOCK_COLUMNS.map((c) => ({
              name: c.name,
              type: c.type,
              length: 'length' in c ? String(c.length) : undefined,
              isPrimary: 'primary' in c ? c.primary : false,
              isNullable: 'nullable' in c ? c.nullable : false,
            })),
            { name: 'wanted_at', type: 'bigint', isNullable: true },
          ],
        }),
      );
    }
    async down(queryRunner: QueryRunner): Promise<void> {
      await queryRunner.dropTable(tableName);
    }
  };
}

/** Runs `migrations` with TypeORM's migration runner; resolves to the columns of `table`. */
async function migrate(
  db: TestDatabase,
  migrations: (new () => MigrationInterface)[],
  table?: string,
): Promise<string[]> {
  const source = new DataSource({ ...db.options(), migrations } as never);
  await source.initialize();
  try {
    await source.runMigrations();
    if (table === undefined) return [];
    const runner = source.createQueryRunner();
    try {
      return (await runner.getTable(table))?.columns.map((c) => c.name) ?? [];
    } finally {
      await runner.release();
    }
  } finally {
    await source.destroy();
  }
}

describe.each(testDatabases())('schema version on $label', (db) => {
  it('refuses the 0.1 table with a message naming the upgrade, which TypeORM then runs', async () => {
    const table = uniqueTableName('rlock_v1');
    await migrate(db, [version1Migration(table)]);
    // Data written by 0.1: a lock released with an error.
    const seed = new DataSource(db.options() as never);
    await seed.initialize();
    const p = (i: number) => (db.kind === 'postgres' ? `$${i}` : '?');
    await seed.query(
      `INSERT INTO ${table} (id, name, token, fence, holder, last_outcome, last_error) VALUES (${p(1)}, ${p(2)}, NULL, 41, 'old', 'error', ${p(3)})`,
      [lockKey('foo'), 'foo', '{"name":"Error","message":"left by 0.1"}'],
    );
    await seed.destroy();

    await expect(createTestApp(db, { tableName: table }, {}, false)).rejects.toThrow(
      /schema version 1; this version of nestjs-rlock needs version 2\. Add createRLockWaitersMigration\('rlock_v1_/,
    );

    await migrate(db, [version1Migration(table), createRLockWaitersMigration(table)]);
    const app = await createTestApp(db, { tableName: table }, {}, false);
    try {
      const lock = await app.service.lock('foo', 1_000);
      expect(lock.fence).toBe(42);
      expect(lock.lastError?.message).toBe('left by 0.1');
      // Waiting works on the upgraded tables (the waiters table is new).
      const waiting = app.service.lock('foo', 5_000);
      await lock.unlock();
      await (await waiting).unlock();
      const columns = await migrate(
        db,
        [version1Migration(table), createRLockWaitersMigration(table)],
        table,
      );
      expect(columns).not.toContain('wanted_at');
    } finally {
      await app.close();
    }
  });

  it('creates and stamps the current schema from the migrations, also when both run on a new database', async () => {
    const table = uniqueTableName('rlock_v2');
    await migrate(db, [createRLockMigration(table), createRLockWaitersMigration(table)]);
    const app = await createTestApp(db, { tableName: table }, {}, false);
    try {
      const lock = await app.service.lock('fresh', 1_000);
      await lock.unlock();
    } finally {
      await app.close();
    }
  });

  it('stamps tables that TypeORM synchronized, and refuses a newer schema', async () => {
    const table = uniqueTableName('rlock_sync');
    const app = await createTestApp(db, { tableName: table });
    const p = (i: number) => (db.kind === 'postgres' ? `$${i}` : '?');
    const stamped = await app.dataSource.query(
      `SELECT queued_at FROM ${table}_waiters WHERE token = ${p(1)}`,
      ['rlock-schema'],
    );
    expect(Number(stamped[0].queued_at)).toBe(2);
    await app.dataSource.query(`UPDATE ${table}_waiters SET queued_at = 3 WHERE token = ${p(1)}`, [
      'rlock-schema',
    ]);
    await app.close();
    await expect(createTestApp(db, { tableName: table }, {}, false)).rejects.toThrow(
      /schema version 3, newer than the 2/,
    );
  });
});
