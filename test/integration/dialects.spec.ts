import { DataSource } from 'typeorm';
import { createRLockEntity } from '../../lib';
import { createDialect } from '../../lib/dialects/create-dialect';
import type { AcquireCommand, LockDialect } from '../../lib/dialects/dialect.interface';
import { MysqlDialect } from '../../lib/dialects/mysql.dialect';
import { lockKey } from '../../lib/internal/lock-key';
import { testDatabases, uniqueTableName, type TestDatabase } from '../support/databases';

interface Variant {
  label: string;
  db: TestDatabase;
  make(source: DataSource, table: string): LockDialect;
}

const variants: Variant[] = testDatabases().flatMap((db): Variant[] => {
  const base = { label: db.label, db, make: (s: DataSource, t: string) => createDialect(s, t) };
  return db.kind === 'mariadb'
    ? [
        base,
        {
          label: 'MariaDB, MySQL statements (no RETURNING)',
          db,
          make: (s, t) => new MysqlDialect(s, t, { returning: false }),
        },
      ]
    : [base];
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(variants)('dialect on $label', ({ db, make }) => {
  const table = uniqueTableName('rlock_d');
  let source: DataSource;
  let dialect: LockDialect;
  let n = 0;
  const command = (name: string, token: string, ttlMs = 10_000): AcquireCommand => ({
    key: lockKey(name),
    name,
    token,
    holder: `holder-${token}`,
    ttlMs,
    leaseExpiredMessage: 'gone',
    readFirst: false,
    waitingSinceUs: null,
  });

  beforeAll(async () => {
    source = new DataSource({
      ...db.options(),
      entities: [createRLockEntity(table)],
      synchronize: true,
    } as never);
    await source.initialize();
    dialect = make(source, table);
    expect(await dialect.init()).toBe(true);
  });
  afterAll(async () => {
    await dialect?.close();
    await source?.query(`DROP TABLE ${table}`);
    await source?.destroy();
  });

  it('grants a new name once when many attempts race for it', async () => {
    const name = `race-${++n}`;
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => dialect.acquire(command(name, `t${i}`))),
    );
    expect(results.filter((r) => r.acquired)).toHaveLength(1);
  });

  it('refuses a held lock, reporting the lease end, also when reading first', async () => {
    const name = `held-${++n}`;
    const first = await dialect.acquire(command(name, 'a'));
    expect(first.acquired).toBe(true);
    for (const readFirst of [false, true]) {
      const second = await dialect.acquire({ ...command(name, 'b'), readFirst });
      expect(second.acquired).toBe(false);
      if (!second.acquired && second.expiresAtUs !== null) {
        expect(second.expiresAtUs).toBeGreaterThan(second.nowUs!);
      }
    }
  });

  it('releases with an outcome only for the owner token', async () => {
    const name = `release-${++n}`;
    const key = lockKey(name);
    await dialect.acquire(command(name, 'a'));
    expect(await dialect.release({ key, token: 'b', outcome: 'released', error: null })).toBe(
      false,
    );
    expect(
      await dialect.release({ key, token: 'a', outcome: 'error', error: '{"message":"x"}' }),
    ).toBe(true);
    const next = await dialect.acquire(command(name, 'c'));
    expect(next).toMatchObject({
      acquired: true,
      lastOutcome: 'error',
      lastError: '{"message":"x"}',
    });
  });

  it('takes over an expired lease and records who vanished', async () => {
    const name = `expire-${++n}`;
    const first = await dialect.acquire(command(name, 'a', 100));
    expect(await dialect.acquire(command(name, 'b'))).toMatchObject({ acquired: false });
    await sleep(150);
    expect(await dialect.extend(lockKey(name), 'a', 1000)).toBeNull();
    const next = await dialect.acquire(command(name, 'b'));
    expect(next).toMatchObject({ acquired: true, lastOutcome: 'expired' });
    if (!next.acquired || !first.acquired) throw new Error('expected grants');
    expect(next.fence).toBe(first.fence + 1);
    expect(JSON.parse(next.lastError!)).toMatchObject({
      name: 'LeaseExpiredError',
      message: 'gone',
      fields: { holder: 'holder-a', fence: first.fence },
    });
    expect(
      await dialect.release({ key: lockKey(name), token: 'a', outcome: 'released', error: null }),
    ).toBe(false);
  });

  it('extends only a live lease of the owner', async () => {
    const name = `extend-${++n}`;
    const granted = await dialect.acquire(command(name, 'a', 1000));
    if (!granted.acquired) throw new Error('expected a grant');
    const end = await dialect.extend(lockKey(name), 'a', 60_000);
    expect(end).toBeGreaterThan(granted.expiresAtUs + 50_000_000);
    expect(await dialect.extend(lockKey(name), 'b', 60_000)).toBeNull();
  });

  it('force-releases, bumps the fence, and reads rows back', async () => {
    const name = `force-${++n}`;
    const granted = await dialect.acquire(command(name, 'a'));
    if (!granted.acquired) throw new Error('expected a grant');
    expect(await dialect.forceRelease(lockKey(name), '{"message":"op"}')).toBe(true);
    expect(await dialect.forceRelease(lockKey(name), '{"message":"op"}')).toBe(false);
    const row = await dialect.inspect(lockKey(name));
    expect(row).toMatchObject({
      name,
      token: null,
      fence: granted.fence + 1,
      lastOutcome: 'force-released',
      lastError: '{"message":"op"}',
    });
    expect((await dialect.list()).map((r) => r.name)).toContain(name);
    expect(await dialect.inspect(lockKey('never-used'))).toBeNull();
  });

  it('purges only free rows older than the cut-off', async () => {
    const free = `purge-free-${++n}`;
    const held = `purge-held-${n}`;
    await dialect.acquire(command(free, 'a'));
    await dialect.release({ key: lockKey(free), token: 'a', outcome: 'released', error: null });
    await dialect.acquire(command(held, 'a'));
    expect(await dialect.purge(60_000)).toBe(0);
    await sleep(10);
    expect(await dialect.purge(0)).toBeGreaterThanOrEqual(1);
    expect(await dialect.inspect(lockKey(free))).toBeNull();
    expect(await dialect.inspect(lockKey(held))).not.toBeNull();
  });
});
