import { performance } from 'node:perf_hooks';
import { AcquireTimeoutError } from '../../lib';
import type { LockDialect } from '../../lib/dialects/dialect.interface';
import { RLOCK_DIALECT } from '../../lib/rlock.constants';
import { Agent, stopAll, type ChildConfig } from '../reliability/support/agent';
import { createTestApp, type TestApp } from '../support/app';
import { testDatabases, uniqueTableName, type TestDatabase } from '../support/databases';
import { lineOf, until, waitForLine } from '../support/waiting-line';

// Waiting (issue 12): nothing is left on the server by a waiter that gives up, is aborted
// or is killed; a process's connections stay within its pool plus `waitConnections`;
// a free lock is not refused after waiters gave up; local waiters keep their order; a
// waiter handed the lock just after it gave up passes it on with the stored outcome.

class JobFailedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JobFailedError';
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** One server session of a tagged process. */
interface Session {
  id: number;
  /** Running a statement or inside a transaction (the doorbell's own wait excluded). */
  busy: boolean;
  /** Waiting for a lock on the server (row, table, advisory or user lock). */
  lockWait: boolean;
  /** The process's doorbell connection (LISTEN, or asleep in SELECT SLEEP). */
  doorbell: boolean;
}

/**
 * Tells the server sessions of one process apart from everybody else's (other suites and
 * other engineers use the same servers): on PostgreSQL by `application_name`, on MariaDB
 * by a database user of its own (CONNECTION ADMIN, so that a release may ring any doorbell).
 */
class SessionCounter {
  private readonly users: string[] = [];
  private n = 0;

  constructor(
    private readonly db: TestDatabase,
    private readonly observer: TestApp,
  ) {}

  async query(text: string, params: unknown[] = []): Promise<any[]> {
    let i = 0;
    const sql = this.db.kind === 'postgres' ? text.replace(/\?/g, () => `$${++i}`) : text;
    return this.observer.dataSource.query(sql, params);
  }

  /** A new identity: its tag, the URL to connect with, and the TypeORM options for it. */
  async identity(role: string): Promise<{ tag: string; url: string; poolSize: number }> {
    const tag = `rlw_${process.pid}_${++this.n}_${role}`.slice(0, 60);
    if (this.db.kind !== 'mariadb') return { tag, url: this.db.url, poolSize: POOL };
    const database = new URL(this.db.url).pathname.slice(1);
    await this.query(`CREATE USER '${tag}'@'%'`);
    this.users.push(tag);
    await this.query(`GRANT ALL PRIVILEGES ON \`${database}\`.* TO '${tag}'@'%'`);
    await this.query(`GRANT CONNECTION ADMIN ON *.* TO '${tag}'@'%'`);
    const url = new URL(this.db.url);
    url.username = tag;
    url.password = '';
    return { tag, url: url.toString(), poolSize: POOL };
  }

  /** A test database whose data sources connect as `identity`. */
  database(identity: { tag: string; url: string; poolSize: number }): TestDatabase {
    const base = this.db;
    return {
      ...base,
      options: () =>
        base.kind === 'postgres'
          ? {
              type: 'postgres',
              url: base.url,
              applicationName: identity.tag,
              poolSize: identity.poolSize,
            }
          : { type: 'mariadb', url: identity.url, poolSize: identity.poolSize },
    };
  }

  /** The config of a reliability agent connecting as `identity`. */
  agentConfig(
    identity: { tag: string; url: string; poolSize: number },
    table: string,
    extra: Partial<ChildConfig> = {},
  ): ChildConfig {
    return {
      kind: this.db.kind,
      url: identity.url,
      appName: identity.tag,
      poolSize: identity.poolSize,
      table,
      ...extra,
    };
  }

  /** The server sessions of the process tagged `tag`. */
  async sessions(tag: string): Promise<Session[]> {
    if (this.db.kind === 'postgres') {
      const rows = await this.query(
        `SELECT pid, state, wait_event_type, query FROM pg_stat_activity WHERE application_name = ?`,
        [tag],
      );
      return rows.map((r) => {
        const doorbell = /^LISTEN /i.test(String(r.query ?? ''));
        return {
          id: Number(r.pid),
          busy: r.state !== 'idle' && !doorbell,
          lockWait: r.wait_event_type === 'Lock',
          doorbell,
        };
      });
    }
    const rows = await this.query(
      `SELECT p.id, p.command, p.state, p.info,
         (SELECT count(*) FROM information_schema.innodb_trx t
          WHERE t.trx_mysql_thread_id = p.id AND t.trx_state = 'LOCK WAIT') AS lock_wait
       FROM information_schema.processlist p WHERE p.user = ?`,
      [tag],
    );
    return rows.map((r) => {
      const doorbell = r.command === 'Query' && /^SELECT SLEEP/i.test(String(r.info ?? ''));
      return {
        id: Number(r.id),
        busy: r.command !== 'Sleep' && !doorbell,
        lockWait:
          Number(r.lock_wait) > 0 ||
          /^(User lock|Waiting for .*lock.*)$/i.test(String(r.state ?? '')),
        doorbell,
      };
    });
  }

  /** Which of these session ids are still open on the server. */
  async open(ids: number[]): Promise<number[]> {
    if (ids.length === 0) return [];
    const rows =
      this.db.kind === 'postgres'
        ? await this.query(`SELECT pid AS id FROM pg_stat_activity WHERE pid = ANY(?::int[])`, [
            ids,
          ])
        : await this.query(
            `SELECT id FROM information_schema.processlist WHERE id IN (${ids.map(Number).join(',')})`,
          );
    return rows.map((r) => Number(r.id));
  }

  /** Every session of the test database (all users and applications: a figure for the report). */
  async databaseTotal(): Promise<number> {
    const [row] =
      this.db.kind === 'postgres'
        ? await this.query(
            `SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database()`,
          )
        : await this.query(
            `SELECT count(*) AS n FROM information_schema.processlist WHERE db = DATABASE()`,
          );
    return Number(row.n);
  }

  async dropUsers(): Promise<void> {
    for (const user of this.users.splice(0)) {
      await this.query(`DROP USER IF EXISTS '${user}'@'%'`).catch(() => undefined);
    }
  }
}

/**
 * Samples the sessions of some tagged processes in the background until stopped: the
 * largest count per tag, and every sample that found a session in a server-side lock wait.
 */
class Sampler {
  readonly max = new Map<string, number>();
  readonly lockWaits: string[] = [];
  samples = 0;
  /** Why sampling stopped early (a failed query). */
  error: unknown;
  private running = true;
  private readonly loop: Promise<void>;

  constructor(
    private readonly counter: SessionCounter,
    private readonly tags: string[],
    everyMs = 25,
  ) {
    this.loop = (async () => {
      while (this.running) {
        for (const tag of this.tags) {
          const sessions = await this.counter.sessions(tag);
          this.max.set(tag, Math.max(this.max.get(tag) ?? 0, sessions.length));
          const waiting = sessions.filter((s) => s.lockWait);
          if (waiting.length > 0) this.lockWaits.push(`${tag}: ${waiting.length}`);
        }
        this.samples++;
        await sleep(everyMs);
      }
    })().catch((error: unknown) => {
      this.error = error;
    });
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    if (this.error !== undefined) throw this.error;
  }
}

/** The TypeORM pool size of the processes whose connections are counted. */
const POOL = 3;

describe.each(testDatabases())('waiting on $label', (db) => {
  const server = db.kind !== 'sqlite';
  const serverIt = server ? it : it.skip;
  const tableName = uniqueTableName('rlock_w');
  let observer: TestApp;
  let counter: SessionCounter;
  const apps: TestApp[] = [];
  const agents: Agent[] = [];
  let n = 0;
  const fresh = (label: string) => `${label}-${++n}`;

  /** An in-process app (its own RLockService: another process in the database's eyes). */
  const app = async (holder: string, target: TestDatabase = db, extra = {}) => {
    const started = await createTestApp(target, {
      tableName,
      holder,
      errors: [JobFailedError],
      ...extra,
    });
    apps.push(started);
    return started;
  };

  /** A child process holding and waiting for locks on command (test/reliability/workers/agent.js). */
  const agent = async (role: string, rlock: Record<string, unknown> = {}) => {
    const identity = await counter.identity(role);
    const started = await Agent.start(
      counter.agentConfig(identity, tableName, { rlock: { holder: role, ...rlock } }),
    );
    agents.push(started);
    return { agent: started, tag: identity.tag };
  };

  const q = (text: string, params: unknown[] = []) => counter.query(text, params);
  const samplers: Sampler[] = [];
  const sample = (tags: string[]) => {
    const sampler = new Sampler(counter, tags);
    samplers.push(sampler);
    return sampler;
  };
  afterEach(async () => {
    for (const sampler of samplers.splice(0)) await sampler.stop().catch(() => undefined);
  });

  /** The places in the line of `name`, in order, with whether each is live. */
  const places = (name: string) => lineOf(q, db.kind, tableName, name);
  const liveHolders = async (name: string) =>
    (await places(name)).filter((p) => p.live).map((p) => p.holder);
  /** Resolves once the live places of `name` are exactly `holders`, in this order. */
  const lineIs = (name: string, holders: string[]) =>
    waitForLine(q, db.kind, tableName, name, holders);

  beforeAll(async () => {
    observer = await createTestApp(db, { tableName, holder: 'observer' });
    counter = new SessionCounter(db, observer);
  });
  afterAll(async () => {
    await stopAll(agents);
    for (const a of apps) await a.close().catch(() => undefined);
    await counter?.dropUsers();
    if (server) {
      // The tables of this file on this server: its own, and those synchronize created for
      // the other databases' describes (autoLoadEntities sees every module compiled so far).
      const mine = `rlock\\_w\\_${process.pid}\\_%`;
      const tables = await q(
        db.kind === 'postgres'
          ? `SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE ?`
          : `SELECT table_name AS name FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name LIKE ?`,
        [mine],
      ).catch(() => []);
      for (const { name } of tables) {
        await q(`DROP TABLE IF EXISTS ${String(name)}`).catch(() => undefined);
      }
    }
    await observer?.close();
  });

  describe('nothing stranded on the server', () => {
    serverIt(
      'give-ups and aborts in first, second and later places, and waiters killed with SIGKILL, leave no session, lock wait or live place',
      async () => {
        const x = fresh('x');
        const y = fresh('y');
        const before = await counter.databaseTotal();
        const a = await agent('holder-a');
        const c = await agent('waiter-c');
        const b = await counter.identity('waiter-b');
        const appB = await app('waiter-b', counter.database(b));
        const f = await app('waiter-f');
        const heldX = await a.agent.call('lock', { name: x, timeoutMs: 5_000, ttlMs: 60_000 });
        const heldY = await a.agent.call('lock', { name: y, timeoutMs: 5_000, ttlMs: 60_000 });
        expect(heldX.error).toBeUndefined();
        expect(heldY.error).toBeUndefined();
        const cWaits = c.agent.call('lock', { name: x, timeoutMs: 120_000 }, 120_000);
        await lineIs(x, ['waiter-c']);
        const baseline = await counter.databaseTotal();
        const sampler = sample([b.tag, a.tag, c.tag]);
        const cleanupMs: number[] = [];

        /** After a give-up: B's place gone and none of B's sessions in a statement. */
        const cleanedUp = async (name: string, expected: string[]) => {
          const { ms } = await until(`waiter-b cleaned up on ${name}`, async () => {
            const [line, sessions] = await Promise.all([
              liveHolders(name),
              counter.sessions(b.tag),
            ]);
            return (
              line.join('|') === expected.join('|') && sessions.every((s) => !s.busy && !s.lockWait)
            );
          });
          cleanupMs.push(ms);
        };

        // Ten give-ups in second place (C is first), as in the issue.
        for (let i = 0; i < 10; i++) {
          const started = performance.now();
          await expect(appB.service.lock(x, 1_200)).rejects.toBeInstanceOf(AcquireTimeoutError);
          expect(performance.now() - started).toBeGreaterThanOrEqual(1_150);
          await cleanedUp(x, ['waiter-c']);
        }
        const afterGiveUps = await counter.databaseTotal();

        /** Waits in line for `name` until B's place is the `position`-th live one, then aborts. */
        const abortAt = async (name: string, ahead: string[]) => {
          const controller = new AbortController();
          const waiting = appB.service.lock(name, 60_000, { signal: controller.signal });
          await lineIs(name, [...ahead, 'waiter-b']);
          const reason = new Error(`aborted behind ${ahead.length}`);
          controller.abort(reason);
          await expect(waiting).rejects.toBe(reason);
          await cleanedUp(name, ahead);
        };
        // Aborted in second place (behind C) and in first place (nobody else waits for y).
        await abortAt(x, ['waiter-c']);
        await abortAt(y, []);
        // y is free once its holder lets it go: B's place was not handed the lock.
        expect((await a.agent.call('unlock', { handle: heldY.handle })).ok).toBe(true);
        expect((await observer.service.inspect(y))?.status).toBe('free');

        // A releases x to C, with an outcome.
        const failure = { kind: 'plain', message: 'first job failed' };
        expect((await a.agent.call('unlock', { handle: heldX.handle, error: failure })).ok).toBe(
          true,
        );
        const cGot = await cWaits;
        expect(cGot.error).toBeUndefined();
        expect(cGot.fence).toBe(heldX.fence + 1);
        expect(cGot.lastError?.message).toBe('first job failed');

        // D and E wait behind C's holding; B gives up in third place; F waits last.
        const d = await agent('waiter-d');
        const e = await agent('waiter-e');
        const dWaits = d.agent.call('lock', { name: x, timeoutMs: 120_000 }, 120_000);
        await lineIs(x, ['waiter-d']);
        const eWaits = e.agent.call('lock', { name: x, timeoutMs: 120_000 }, 120_000);
        await lineIs(x, ['waiter-d', 'waiter-e']);
        await abortAt(x, ['waiter-d', 'waiter-e']);
        const fWaits = f.service.lock(x, 60_000);
        await lineIs(x, ['waiter-d', 'waiter-e', 'waiter-f']);

        // D and E are killed while waiting: their sessions close, their places die.
        const dSessions = (await counter.sessions(d.tag)).map((s) => s.id);
        const eSessions = (await counter.sessions(e.tag)).map((s) => s.id);
        expect(dSessions.length).toBeGreaterThan(0);
        expect(eSessions.length).toBeGreaterThan(0);
        dWaits.catch(() => undefined);
        eWaits.catch(() => undefined);
        const killedAt = performance.now();
        d.agent.signal('SIGKILL');
        e.agent.signal('SIGKILL');
        const since = async (what: string, probe: () => Promise<boolean>) => {
          await until(what, async () => (await probe()) || undefined);
          return performance.now() - killedAt;
        };
        const [sessionsGoneMs, placesDeadMs] = await Promise.all([
          since(
            'sessions of the killed waiters closed',
            async () => (await counter.open([...dSessions, ...eSessions])).length === 0,
          ),
          since(
            'places of the killed waiters dead',
            async () => (await liveHolders(x)).join('|') === 'waiter-f',
          ),
        ]);

        // C releases: F, the waiter left, gets the lock at once with C's outcome.
        const released = performance.now();
        const cUnlock = await c.agent.call('unlock', {
          handle: cGot.handle,
          error: { kind: 'plain', message: 'second job failed' },
        });
        expect(cUnlock.ok).toBe(true);
        const fLock = await fWaits;
        const handoffMs = performance.now() - released;
        expect(fLock.fence).toBe(cGot.fence + 1);
        expect(fLock.lastError?.message).toBe('second job failed');
        await fLock.unlock();

        await sampler.stop();
        const end = await until('waiter-b idle', async () => {
          const sessions = await counter.sessions(b.tag);
          return sessions.every((s) => !s.busy && !s.lockWait) ? sessions : undefined;
        });
        const after = await counter.databaseTotal();
        console.log(
          `[waiting] ${db.label} stranded sessions: database sessions ${before} before the test, ` +
            `${baseline} with A, B, C, F up, ${afterGiveUps} after 10 give-ups, ${after} at the end; ` +
            `B's sessions at most ${sampler.max.get(b.tag)} (pool ${POOL} + 1), now ${end.value.length}; ` +
            `lock waits seen ${sampler.lockWaits.length} in ${sampler.samples} samples; ` +
            `cleanup after a give-up max ${Math.max(...cleanupMs).toFixed(0)} ms; ` +
            `killed waiters: sessions closed ${sessionsGoneMs.toFixed(0)} ms, places dead ${placesDeadMs.toFixed(0)} ms; ` +
            `hand-off past the dead places ${handoffMs.toFixed(0)} ms`,
        );
        expect(sampler.lockWaits).toEqual([]);
        expect(sampler.max.get(b.tag)).toBeLessThanOrEqual(POOL + 1);
        expect(Math.max(...cleanupMs)).toBeLessThan(3_000);
        expect(sessionsGoneMs).toBeLessThan(3_000);
        // A place lives 2 s unless renewed (renewed every second).
        expect(placesDeadMs).toBeLessThan(3_000);
        expect(handoffMs).toBeLessThan(3_000);
      },
      180_000,
    );

    serverIt('a waiting process that shuts down gives its places up at once', async () => {
      const x = fresh('shutdown');
      const holder = await app('holder-s');
      const held = await holder.service.lock(x, 5_000, { ttlMs: 60_000 });
      const w = await agent('waiter-s');
      const waits = w.agent.call('lock', { name: x, timeoutMs: 60_000 }, 60_000);
      waits.catch(() => undefined);
      await lineIs(x, ['waiter-s']);
      const ids = (await counter.sessions(w.tag)).map((s) => s.id);
      const started = performance.now();
      await w.agent.stop();
      const { ms } = await until('place given up and sessions closed', async () => {
        const [line, open] = await Promise.all([liveHolders(x), counter.open(ids)]);
        return line.length === 0 && open.length === 0;
      });
      console.log(
        `[waiting] ${db.label} shutdown while waiting: place and sessions gone ${(performance.now() - started).toFixed(0)} ms after the exit command (${ms.toFixed(0)} ms after the process ended)`,
      );
      // The place was deleted, not left to run out (which takes up to 2 s).
      expect((await places(x)).length).toBe(0);
      await held.unlock();
      expect((await observer.service.inspect(x))?.status).toBe('free');
    });
  });

  describe('connection budget', () => {
    for (const waitConnections of [1, 0]) {
      serverIt(
        `one process waiting on 50 names, then 20 waiters on one name: at most pool + ${waitConnections} connections (waitConnections ${waitConnections})`,
        async () => {
          const names = Array.from({ length: 50 }, (_, i) => fresh(`budget-${i}`));
          const single = fresh('budget-one');
          const h = await agent('holder-h');
          const w = await agent('waiter-w', { waitConnections });
          const held = await Promise.all(
            [...names, single].map((name) =>
              h.agent.call('lock', { name, timeoutMs: 10_000, ttlMs: 60_000 }),
            ),
          );
          expect(held.every((r) => r.error === undefined)).toBe(true);
          const sampler = sample([w.tag]);

          // 50 names at once.
          const waits = names.map((name) =>
            w.agent.call('lock', { name, timeoutMs: 60_000 }, 60_000),
          );
          await until('50 places', async () => {
            const [row] = await q(
              `SELECT count(*) AS n FROM ${tableName}_waiters WHERE holder = 'waiter-w'`,
            );
            return Number(row.n) === 50;
          });
          // Two renewals of the places at least, then every name handed over.
          const samplesBefore = sampler.samples;
          await sleep(2_500);
          const waitingSamples = sampler.samples - samplesBefore;
          const maxWhileWaiting = sampler.max.get(w.tag) ?? 0;
          const released = performance.now();
          await Promise.all(
            held.slice(0, 50).map((r) => h.agent.call('unlock', { handle: r.handle })),
          );
          const got = await Promise.all(waits);
          const handoff50Ms = performance.now() - released;
          expect(got.every((r) => r.error === undefined)).toBe(true);
          await Promise.all(got.map((r) => w.agent.call('unlock', { handle: r.handle })));
          expect(
            await q(`SELECT token FROM ${tableName}_waiters WHERE holder = 'waiter-w'`),
          ).toEqual([]);

          // 20 waiters of one process on one name.
          const many = w.agent.call<{ results: { granted?: boolean; error?: unknown }[] }>(
            'lockMany',
            { name: single, timeoutMs: 60_000, count: 20 },
            60_000,
          );
          await lineIs(single, ['waiter-w']);
          await sleep(1_500);
          await h.agent.call('unlock', { handle: held[50].handle });
          const { results } = await many;
          expect(results.filter((r) => r.granted)).toHaveLength(20);
          await sampler.stop();
          const max = sampler.max.get(w.tag) ?? 0;
          console.log(
            `[waiting] ${db.label} connection budget (pool ${POOL}, waitConnections ${waitConnections}): ` +
              `at most ${maxWhileWaiting} sessions while waiting on 50 names (${waitingSamples} samples), ` +
              `${max} over the whole test (50 names, 20 waiters on one name; ${sampler.samples} samples); ` +
              `50 names handed over in ${handoff50Ms.toFixed(0)} ms`,
          );
          expect(sampler.lockWaits).toEqual([]);
          expect(max).toBeLessThanOrEqual(POOL + waitConnections);
        },
        120_000,
      );
    }
  });

  describe('a free lock after waiters gave up', () => {
    it('is granted at once to tryLock (no mark of the waiters left behind)', async () => {
      const x = fresh('free');
      const a = await app('free-a');
      const b = await app('free-b');
      const c = await app('free-c');
      const held = await a.service.lock(x, 5_000);
      const waits = [
        b.service.lock(x, 300),
        b.service.lock(x, 300),
        c.service.lock(x, 300),
        c.service.lock(x, 300),
      ];
      for (const result of await Promise.allSettled(waits)) {
        expect(result.status === 'rejected' && result.reason).toBeInstanceOf(AcquireTimeoutError);
      }
      // Given up at once (a DELETE each), not left to run out (a place lives 2 s).
      const { ms } = await until('places given up', async () => (await places(x)).length === 0);
      expect(ms).toBeLessThan(500);
      await held.unlock();
      // C, whose own waiters gave up, gets the free lock on its first try.
      const next = await c.service.tryLock(x);
      expect(next).not.toBeNull();
      expect(await b.service.tryLock(x)).toBeNull();
      await next!.unlock();
      // And a newcomer with a wait takes it at once too.
      const started = performance.now();
      const again = await b.service.lock(x, 1_000);
      expect(performance.now() - started).toBeLessThan(500);
      await again.unlock();
    });
  });

  describe('order', () => {
    it('local waiters keep their arrival order, and a later process gets its turn in between', async () => {
      const x = fresh('order');
      const a = await app('order-a');
      const b = await app('order-b');
      const c = await app('order-c');
      const held = await a.service.lock(x, 5_000);
      const order: string[] = [];
      const take = (service: TestApp, label: string) =>
        service.service.withLock(x, 30_000, async () => {
          order.push(label);
          await sleep(5);
        });
      const calls: Promise<void>[] = [take(b, 'b1')];
      await lineIs(x, ['order-b']);
      calls.push(take(c, 'c1'));
      await lineIs(x, ['order-b', 'order-c']);
      // b2..b5 arrive after c1 and join b's local line, one after the other.
      for (let i = 2; i <= 5; i++) calls.push(take(b, `b${i}`));
      await held.unlock();
      await Promise.all(calls);
      expect(order).toEqual(['b1', 'c1', 'b2', 'b3', 'b4', 'b5']);
    });

    // The callers that ask while the first caller's attempt is on its way join the line at
    // once; the first caller, whose attempt failed, goes to its head.
    it('callers of one process that ask at the same moment are served in the order they asked', async () => {
      const x = fresh('order-burst');
      const a = await app('burst-a');
      const b = await app('burst-b');
      const held = await a.service.lock(x, 5_000);
      const order: number[] = [];
      // Five calls in one tick: the first makes the attempt, the others join the line.
      const calls = [1, 2, 3, 4, 5].map((i) =>
        b.service.withLock(x, 30_000, async () => {
          order.push(i);
          await sleep(5);
        }),
      );
      await lineIs(x, ['burst-b']);
      await held.unlock();
      await Promise.all(calls);
      expect(order).toEqual([1, 2, 3, 4, 5]);
    });
  });

  describe('a grant to a place whose waiters just gave up', () => {
    for (const how of ['abort', 'timeout'] as const) {
      it(`is passed on keeping the stored outcome (${how})`, async () => {
        const x = fresh(`pass-${how}`);
        const a = await app('pass-a');
        const b = await app('pass-b');
        const c = await app('pass-c');
        // B's give-up reaches the database only once A's release has handed B the lock.
        const dialect = b.module.get<LockDialect>(RLOCK_DIALECT);
        const leaveLine = dialect.leaveLine.bind(dialect);
        let openGate!: () => void;
        const gate = new Promise<void>((resolve) => (openGate = resolve));
        let gated = 0;
        dialect.leaveLine = async (token) => {
          gated++;
          await gate;
          return leaveLine(token);
        };
        try {
          const held = await a.service.lock(x, 5_000);
          const controller = new AbortController();
          const bWaits = b.service.lock(x, how === 'timeout' ? 1_000 : 60_000, {
            signal: controller.signal,
          });
          await lineIs(x, ['pass-b']);
          const cWaits = c.service.lock(x, 30_000);
          await lineIs(x, ['pass-b', 'pass-c']);
          if (how === 'abort') controller.abort(new Error('gave up'));
          await expect(bWaits).rejects.toThrow(how === 'abort' ? 'gave up' : AcquireTimeoutError);
          expect(gated).toBe(1);
          await held.unlock(new JobFailedError('the first job failed'));
          // Handed to B's place, which nobody waits on any more.
          const handed = await observer.service.inspect(x);
          expect(handed).toMatchObject({
            status: 'held',
            holder: 'pass-b',
            fence: held.fence + 1,
            lastOutcome: 'error',
          });
          openGate();
          const next = await cWaits;
          expect(next.fence).toBe(held.fence + 2);
          expect(next.lastError).toBeInstanceOf(JobFailedError);
          expect(next.lastError?.message).toBe('the first job failed');
          expect((await observer.service.inspect(x))?.lastOutcome).toBe('error');
          await next.unlock();
          expect(await places(x)).toEqual([]);
          // B's line is over: B takes the lock again like anyone else.
          const again = await b.service.lock(x, 2_000);
          expect(again.fence).toBe(next.fence + 1);
          await again.unlock();
        } finally {
          openGate();
          dialect.leaveLine = leaveLine;
        }
      });
    }
  });
});
