import { Client } from 'pg';
import { lockKey } from '../../lib/internal/lock-key';
import { createTestApp, type TestApp } from '../support/app';
import { testDatabases, uniqueTableName } from '../support/databases';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const postgres = testDatabases().filter((db) => db.kind === 'postgres');
// Polling alone would wait at least this long between attempts (backoff 10 s).
const slowPolling = { backoff: { minMs: 10_000, maxMs: 10_000 } };

describe.each(postgres)('release wake-ups on $label', (db) => {
  const tableName = uniqueTableName('rlock_wake');
  const apps: TestApp[] = [];
  let n = 0;
  const fresh = () => `wake-${++n}`;

  beforeAll(async () => {
    // Three application contexts: three dialects, each with its own listening connection, as three processes would have.
    for (const holder of ['app-a', 'app-b', 'app-c']) {
      apps.push(await createTestApp(db, { tableName, holder, ...slowPolling }));
    }
  });

  afterAll(async () => {
    for (const app of apps) await app.close();
  });

  it('wakes a waiter of another process when the lock is released, without waiting for its next poll', async () => {
    const [a, b] = apps;
    const name = fresh();
    const held = await a.service.lock(name, 1000);
    const waiting = b.service.lock(name, 20_000);
    await sleep(300);
    const releasedAt = performance.now();
    await held.unlock();
    const next = await waiting;
    expect(performance.now() - releasedAt).toBeLessThan(900);
    expect(next.fence).toBe(held.fence + 1);
    await next.unlock();
  });

  it('hands the lock to waiting processes in the order they started waiting', async () => {
    const [a, b, c] = apps;
    const name = fresh();
    const order: string[] = [];
    const held = await a.service.lock(name, 1000);
    const first = b.service.lock(name, 20_000).then(async (lock) => {
      order.push('b');
      await sleep(50);
      await lock.unlock();
    });
    await sleep(300);
    const second = c.service.lock(name, 20_000).then(async (lock) => {
      order.push('c');
      await lock.unlock();
    });
    await sleep(300);
    await held.unlock();
    await Promise.all([first, second]);
    expect(order).toEqual(['b', 'c']);
  });

  it('does not let a process that releases and re-takes in a loop starve a waiting process', async () => {
    const [a, b] = apps;
    const name = fresh();
    let stop = false;
    let loops = 0;
    const looping = (async () => {
      while (!stop) {
        const lock = await a.service.lock(name, 20_000);
        loops++;
        await sleep(2);
        await lock.unlock();
      }
    })();
    await sleep(100);
    const started = performance.now();
    const lock = await b.service.lock(name, 20_000);
    const waited = performance.now() - started;
    await lock.unlock();
    stop = true;
    await looping;
    expect(loops).toBeGreaterThan(0);
    expect(waited).toBeLessThan(900);
  });

  it('keeps waking waiters after its listening connection is cut (reconnects; polls meanwhile)', async () => {
    const [a, b] = apps;
    const name = fresh();
    const held = await a.service.lock(name, 1000);
    const waiting = b.service.lock(name, 30_000);
    await sleep(300);
    // Cut the listening connections of this table (opened by this test's apps only).
    const admin = new Client({ connectionString: db.url });
    await admin.connect();
    const { rows } = await admin.query(
      `SELECT pg_terminate_backend(pid) AS cut FROM pg_stat_activity
       WHERE pid <> pg_backend_pid() AND query LIKE 'LISTEN "rlock\\_%' AND query LIKE $1`,
      [`%${channelSuffixOf(name)}%`],
    );
    await admin.end();
    expect(rows.length).toBeGreaterThan(0);
    await sleep(500);
    await held.unlock();
    const next = await waiting;
    expect(next.fence).toBe(held.fence + 1);
    await next.unlock();
    // After reconnecting, a release wakes waiters at once again.
    const again = await a.service.lock(name, 1000);
    const waitingAgain = b.service.lock(name, 20_000);
    await sleep(300);
    const releasedAt = performance.now();
    await again.unlock();
    await (await waitingAgain).unlock();
    expect(performance.now() - releasedAt).toBeLessThan(900);
  });
});

/** The part of a lock's notification channel that comes from its key. */
function channelSuffixOf(name: string): string {
  return lockKey(name).slice(0, 40);
}
