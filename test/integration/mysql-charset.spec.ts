import { createConnection, type Connection } from 'mysql2/promise';
import { DataSource, Table, type MigrationInterface, type QueryRunner } from 'typeorm';
import { createRLockMigration, createRLockWaitersMigration, type RemoteLock } from '../../lib';
import { RLOCK_COLUMNS, RLOCK_COLUMNS_SINCE_2 } from '../../lib/entities/rlock.entity';
import { createTestApp, type TestApp } from '../support/app';
import {
  DATABASE_ENV,
  testDatabase,
  uniqueTableName,
  type TestDatabase,
} from '../support/databases';

const serverUrl = process.env[DATABASE_ENV.mariadb];

/** Names that latin1 or utf8mb3 cannot hold, or that a case- or accent-insensitive collation confuses. */
const NAMES = [
  'café',
  'CAFÉ',
  'cafe\u0301',
  'Ünïcødé 💥',
  '🔒 résumé 𝄞',
  'naïve 日本語 😀😀',
  'plain-ascii',
];

/** The lock table as nestjs-rlock 0.1 created it: no charset of its own, `wanted_at`. */
function version1Migration(tableName: string): new () => MigrationInterface {
  return class CreateCharsetVersion1Table1764201600000 implements MigrationInterface {
    name = `CreateCharsetVersion1Table${tableName}1764201600000`;
    async up(queryRunner: QueryRunner): Promise<void> {
      await queryRunner.createTable(
        new Table({
          name: tableName,
          columns: [
            ...RLOCK_COLUMNS.filter(
              (c) => !(RLOCK_COLUMNS_SINCE_2 as readonly string[]).includes(c.name),
            ).map((c) => ({
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

(serverUrl ? describe.each(['latin1', 'utf8mb3']) : describe.skip.each(['latin1']))(
  'MariaDB lock tables in a database whose default character set is %s',
  (charset) => {
    const database = `rlock_cs_${charset}_${process.pid}`;
    let admin: Connection;
    let db: TestDatabase;

    beforeAll(async () => {
      admin = await createConnection(serverUrl!);
      await admin.query(`DROP DATABASE IF EXISTS \`${database}\``);
      await admin.query(`CREATE DATABASE \`${database}\` CHARACTER SET ${charset}`);
      const url = new URL(serverUrl!);
      url.pathname = `/${database}`;
      db = testDatabase('mariadb', url.href);
    });
    afterAll(async () => {
      await admin?.query(`DROP DATABASE IF EXISTS \`${database}\``);
      await admin?.end();
    });

    /** The collations of the string columns of a table. */
    async function collations(table: string): Promise<string[]> {
      const [rows] = await admin.query(
        `SELECT DISTINCT COLLATION_NAME AS c FROM information_schema.COLUMNS
         WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND COLLATION_NAME IS NOT NULL`,
        [database, table],
      );
      return (rows as { c: string }[]).map((row) => row.c);
    }

    /** Takes and releases every name (with an error naming it), then reads them back. */
    async function roundTrip(app: TestApp, table: string): Promise<void> {
      const fences = new Map<string, number>();
      for (const name of NAMES) {
        const lock: RemoteLock = await app.service.lock(name, 5_000);
        fences.set(name, lock.fence);
        await lock.unlock(new Error(`failed on ${name}`));
      }
      for (const name of NAMES) {
        const state = await app.service.inspect(name);
        expect(state).toMatchObject({ name, status: 'free', fence: fences.get(name) });
        expect(state!.lastError!.message).toBe(`failed on ${name}`);
      }
      const listed = (await app.service.list()).map((state) => state.name);
      expect([...listed].sort()).toEqual([...NAMES].sort());
      // Every name is its own lock: holding one leaves the look-alikes free.
      const held = await app.service.lock('café', 5_000);
      for (const name of NAMES.filter((n) => n !== 'café')) {
        const other = await app.service.tryLock(name);
        expect(other?.name).toBe(name);
        await other!.unlock();
      }
      await held.unlock();
      expect(await collations(table)).toEqual(['utf8mb4_bin']);
      expect(await collations(`${table}_waiters`)).toEqual(['utf8mb4_bin']);
    }

    it('TypeORM synchronize: the tables hold every name', async () => {
      const table = uniqueTableName('rlock_cs_sync');
      const app = await createTestApp(db, { tableName: table });
      try {
        await roundTrip(app, table);
      } finally {
        await app.close();
      }
    });

    it('createRLockMigration(): the tables hold every name', async () => {
      const table = uniqueTableName('rlock_cs_mig');
      const source = new DataSource({ ...db.options(), migrations: [createRLockMigration(table)] });
      await source.initialize();
      await source.runMigrations();
      await source.destroy();
      const app = await createTestApp(db, { tableName: table }, {}, false);
      try {
        await roundTrip(app, table);
      } finally {
        await app.close();
      }
    });

    it('the upgrade from 0.1 converts the lock table', async () => {
      const table = uniqueTableName('rlock_cs_v1');
      const source = new DataSource({
        ...db.options(),
        migrations: [version1Migration(table), createRLockWaitersMigration(table)],
      });
      await source.initialize();
      await source.runMigrations();
      await source.destroy();
      const app = await createTestApp(db, { tableName: table }, {}, false);
      try {
        await roundTrip(app, table);
      } finally {
        await app.close();
      }
    });
  },
);
