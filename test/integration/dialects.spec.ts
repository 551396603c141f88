import { DataSource } from 'typeorm';
import { createRLockEntities } from '../../lib';
import { createDialect } from '../../lib/dialects/create-dialect';
import { RLOCK_SCHEMA_VERSION } from '../../lib/entities/schema-version';
import type {
  AcquireCommand,
  LockDialect,
  Place,
  ReleaseCommand,
} from '../../lib/dialects/dialect.interface';
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
    holdLimitMessage: 'overran',
    maxHoldMs: null,
    oncePerMs: null,
    place: null,
  });
  const release = (
    name: string,
    token: string,
    outcome: ReleaseCommand['outcome'] = 'released',
    error: string | null = null,
  ) =>
    dialect.release({
      key: lockKey(name),
      token,
      outcome,
      error,
      handoffLeaseMs: 1_500,
      minHoldMs: null,
    });
  const enqueue = (name: string, token: string, owner = 'owner-a', placeTtlMs = 60_000) =>
    dialect.enqueue({
      key: lockKey(name),
      token,
      holder: `holder-${token}`,
      ttlMs: 10_000,
      maxHoldMs: null,
      owner,
      doorbell: null,
      placeTtlMs,
    });
  const inLine = (name: string, token: string, place: Place): AcquireCommand => ({
    ...command(name, token),
    place,
  });

  beforeAll(async () => {
    source = new DataSource({
      ...db.options(),
      entities: createRLockEntities(table),
      synchronize: true,
    } as never);
    await source.initialize();
    dialect = make(source, table);
    expect(await dialect.init()).toBe(true);
    expect(await dialect.schemaVersion(RLOCK_SCHEMA_VERSION)).toBe(RLOCK_SCHEMA_VERSION);
  });
  afterAll(async () => {
    await dialect?.close();
    await source?.query(`DROP TABLE ${table}_waiters`);
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

  it('refuses a held lock, reporting the lease end', async () => {
    const name = `held-${++n}`;
    const first = await dialect.acquire(command(name, 'a'));
    expect(first.acquired).toBe(true);
    const second = await dialect.acquire(command(name, 'b'));
    expect(second.acquired).toBe(false);
    if (!second.acquired) expect(second.expiresAtUs).toBeGreaterThan(second.nowUs!);
  });

  it('releases with an outcome only for the owner token', async () => {
    const name = `release-${++n}`;
    const key = lockKey(name);
    await dialect.acquire(command(name, 'a'));
    expect(key).toBe(lockKey(name));
    expect(await release(name, 'b')).toEqual({ released: false, handedTo: null });
    expect(await release(name, 'a', 'error', '{"message":"x"}')).toEqual({
      released: true,
      handedTo: null,
    });
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
    expect((await release(name, 'a')).released).toBe(false);
  });

  it("revives a lease that ran out while still the token's, never one taken over", async () => {
    const name = `revive-${++n}`;
    await dialect.acquire(command(name, 'a', 100));
    await sleep(150);
    expect(await dialect.extend(lockKey(name), 'a', 1000)).toBeNull();
    const end = await dialect.extend(lockKey(name), 'a', 1000, true);
    const row = (await dialect.readLocks([lockKey(name)])).get(lockKey(name))!;
    expect(end).toBe(row.expiresAtUs);
    expect(end!).toBeGreaterThan(row.nowUs);
    await sleep(1050);
    expect(await dialect.acquire(command(name, 'b'))).toMatchObject({ acquired: true });
    expect(await dialect.extend(lockKey(name), 'a', 1000, true)).toBeNull();
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
    await release(free, 'a');
    await dialect.acquire(command(held, 'a'));
    expect(await dialect.purge(60_000)).toBe(0);
    await sleep(10);
    expect(await dialect.purge(0)).toBeGreaterThanOrEqual(1);
    expect(await dialect.inspect(lockKey(free))).toBeNull();
    expect(await dialect.inspect(lockKey(held))).not.toBeNull();
  });

  describe('the line of waiting processes', () => {
    it('hands the lock to the first live place in the release itself', async () => {
      const name = `handoff-${++n}`;
      const first = await dialect.acquire(command(name, 'a'));
      if (!first.acquired) throw new Error('expected a grant');
      await enqueue(name, 'p1', 'owner-1');
      await enqueue(name, 'p2', 'owner-2');
      expect(await release(name, 'a', 'error', '{"message":"left"}')).toEqual({
        released: true,
        handedTo: 'owner-1',
      });
      const row = (await dialect.readLocks([lockKey(name)])).get(lockKey(name))!;
      expect(row).toMatchObject({
        token: 'p1',
        holder: 'holder-p1',
        fence: first.fence + 1,
        lastOutcome: 'error',
        lastError: '{"message":"left"}',
      });
      // The short hand-off lease, until the new holder renews.
      expect(row.expiresAtUs! - row.nowUs).toBeLessThanOrEqual(1_500_000);
      expect(row.expiresAtUs! - row.nowUs).toBeGreaterThan(500_000);
      // Its place is gone: giving it up now says so.
      expect(await dialect.leaveLine('p1')).toBe(false);
      // The next release goes to the second place.
      expect((await release(name, 'p1')).handedTo).toBe('owner-2');
      expect(await dialect.leaveLine('p2')).toBe(false);
      expect((await release(name, 'p2')).handedTo).toBeNull();
    });

    it('keeps a free lock from newcomers while a live place waits, and gives it to the first place only', async () => {
      const name = `order-${++n}`;
      await dialect.acquire(command(name, 'a'));
      const p1 = await enqueue(name, 'p1');
      const p2 = await enqueue(name, 'p2');
      expect(p2.queuedAtUs).toBeGreaterThanOrEqual(p1.queuedAtUs);
      // Released while the places were being read: free, with places waiting.
      await dialect.leaveLine('p1');
      await dialect.leaveLine('p2');
      await release(name, 'a');
      const q1 = await enqueue(name, 'q1');
      const q2 = await enqueue(name, 'q2');
      expect(await dialect.acquire(command(name, 'newcomer'))).toMatchObject({ acquired: false });
      expect(await dialect.acquire(inLine(name, 'q2', q2))).toMatchObject({ acquired: false });
      expect(await dialect.acquire(inLine(name, 'q1', q1))).toMatchObject({ acquired: true });
      // Granted from its place: the place is gone.
      expect(await dialect.leaveLine('q1')).toBe(false);
      expect((await release(name, 'q1')).handedTo).toBe('owner-a');
    });

    it('never grants again to a place the release already handed the lock to (no fence skipped)', async () => {
      const name = `handed-${++n}`;
      const first = await dialect.acquire(command(name, 'a'));
      if (!first.acquired) throw new Error('expected a grant');
      const place = await enqueue(name, 'p1');
      await release(name, 'a');
      // The place's own attempt, arriving after the hand-off: the grant it finds (if the
      // dialect reports it) is the hand-off's, with its fence and the database clock.
      const late = await dialect.acquire(inLine(name, 'p1', place));
      if (late.acquired) {
        expect(late.fence).toBe(first.fence + 1);
        expect(late.nowUs).toBeDefined();
      }
      const row = (await dialect.readLocks([lockKey(name)])).get(lockKey(name))!;
      expect(row).toMatchObject({ token: 'p1', fence: first.fence + 1 });
      expect((await release(name, 'p1')).released).toBe(true);
    });

    it('skips places whose lease ran out, and frees the lock when none is live', async () => {
      const name = `dead-${++n}`;
      await dialect.acquire(command(name, 'a'));
      await enqueue(name, 'dead', 'owner-dead', 100);
      await sleep(150);
      expect(await dialect.acquire(command(name, 'b'))).toMatchObject({ acquired: false });
      expect(await release(name, 'a')).toEqual({ released: true, handedTo: null });
      // A newcomer gets the free lock at once: the dead place does not count.
      expect(await dialect.acquire(command(name, 'b'))).toMatchObject({ acquired: true });
    });

    it("passes a lock on without changing the stored outcome ('pass')", async () => {
      const name = `pass-${++n}`;
      await dialect.acquire(command(name, 'a'));
      await enqueue(name, 'p1', 'owner-1');
      await enqueue(name, 'p2', 'owner-2');
      await release(name, 'a', 'error', '{"message":"kept"}');
      expect(await release(name, 'p1', 'pass')).toEqual({ released: true, handedTo: 'owner-2' });
      const row = (await dialect.readLocks([lockKey(name)])).get(lockKey(name))!;
      expect(row).toMatchObject({
        token: 'p2',
        lastOutcome: 'error',
        lastError: '{"message":"kept"}',
      });
    });

    it('renews the places of one process, and names the survivors when some are gone', async () => {
      const a = `renew-a-${++n}`;
      const b = `renew-b-${n}`;
      await dialect.acquire(command(a, 'ha'));
      await dialect.acquire(command(b, 'hb'));
      await enqueue(a, 'ra', 'owner-r', 100);
      await enqueue(b, 'rb', 'owner-r', 100);
      expect(await dialect.renewPlaces('owner-r', 60_000, null, 2)).toBe(2);
      await release(a, 'ha');
      expect(await dialect.renewPlaces('owner-r', 60_000, null, 2)).toEqual(['rb']);
      expect(await dialect.leaveLine('rb')).toBe(true);
      expect(await dialect.renewPlaces('owner-r', 60_000, null, 0)).toBe(0);
    });
  });
});
