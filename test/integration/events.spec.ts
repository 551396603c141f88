import { ConsoleLogger, Logger } from '@nestjs/common';
import type { Subscription } from 'rxjs';
import {
  AcquireTimeoutError,
  LeaseExpiredError,
  LockLostError,
  type RLockEvent,
  type RLockEventType,
} from '../../lib';
import { createTestApp, type TestApp } from '../support/app';
import { spawnSupport, waitForLine } from '../support/child-process';
import { testDatabases, uniqueTableName } from '../support/databases';

/** Collects log lines by level, keeping Nest's level checks intact. */
class CapturingLogger extends ConsoleLogger {
  readonly lines: { level: string; message: string }[] = [];
  override log(message: unknown) {
    this.lines.push({ level: 'log', message: String(message) });
  }
  override warn(message: unknown) {
    this.lines.push({ level: 'warn', message: String(message) });
  }
  override debug(message: unknown) {
    this.lines.push({ level: 'debug', message: String(message) });
  }
  override verbose(message: unknown) {
    this.lines.push({ level: 'verbose', message: String(message) });
  }
  override error(message: unknown) {
    this.lines.push({ level: 'error', message: String(message) });
  }
}

describe.each(testDatabases())('RLockService.events$ on $label', (db) => {
  const tableName = uniqueTableName('rlock_ev');
  let app: TestApp;
  let events: RLockEvent[];
  let subscription: Subscription;
  const of = (name: string) => events.filter((event) => event.name === name);
  const types = (name: string): RLockEventType[] => of(name).map((event) => event.type);

  beforeAll(async () => {
    app = await createTestApp(db, { tableName, holder: 'events-app' });
  });
  afterAll(() => app.close());
  beforeEach(() => {
    events = [];
    subscription = app.service.events$.subscribe((event) => events.push(event));
  });
  afterEach(() => subscription.unsubscribe());

  it('emits attempt, acquired, timed-out, renewed and released in order, with their payloads', async () => {
    const lock = await app.service.lock('ev:seq', 5_000, { ttlMs: 30_000 });
    expect(await app.service.tryLock('ev:seq')).toBeNull();
    await expect(app.service.lock('ev:seq', 150)).rejects.toBeInstanceOf(AcquireTimeoutError);
    await lock.extend();
    await lock.unlock(new Error('boom'));
    const next = await app.service.lock('ev:seq', 5_000);
    await next.unlock();

    expect(types('ev:seq')).toEqual([
      'attempt', // lock()
      'acquired',
      'attempt', // tryLock(): refused by the database
      'timed-out', // lock(150): the lock is held in this process, so it waits without polling
      'renewed', // extend()
      'released',
      'attempt', // lock() again
      'acquired',
      'released',
    ]);
    const [, acquired, , timedOut, renewed, released, , acquiredAgain, releasedAgain] =
      of('ev:seq');
    expect(acquired).toMatchObject({
      type: 'acquired',
      fence: lock.fence,
      lastOutcome: null,
      lastError: null,
    });
    expect(acquired.type === 'acquired' && acquired.waitMs).toBeGreaterThanOrEqual(0);
    expect(timedOut).toMatchObject({ type: 'timed-out', timeoutMs: 150 });
    expect(timedOut.type === 'timed-out' && timedOut.waitMs).toBeGreaterThanOrEqual(140);
    expect(renewed).toMatchObject({ type: 'renewed', fence: lock.fence });
    expect(renewed.type === 'renewed' && renewed.expiresAt.getTime()).toBe(
      lock.expiresAt.getTime(),
    );
    expect(released).toMatchObject({ type: 'released', fence: lock.fence, outcome: 'error' });
    expect(released.type === 'released' && released.holdMs).toBeGreaterThanOrEqual(0);
    expect(acquiredAgain).toMatchObject({
      type: 'acquired',
      fence: lock.fence + 1,
      lastOutcome: 'error',
    });
    expect(acquiredAgain.type === 'acquired' && acquiredAgain.lastError?.message).toBe('boom');
    expect(releasedAgain).toMatchObject({ outcome: 'released', fence: lock.fence + 1 });
    for (const event of of('ev:seq')) expect(event.at).toBeInstanceOf(Date);
  });

  it('carries the hold limit (maxHoldMs) on acquired and the minimum hold left (minHoldMs) on released', async () => {
    const lock = await app.service.lock('ev:hold', 5_000, { maxHoldMs: 20_000, minHoldMs: 10_000 });
    await lock.unlock();
    const state = (await app.service.inspect('ev:hold'))!;
    const plain = await app.service.lock('ev:hold:none', 5_000);
    await plain.unlock();

    const [acquired, released] = of('ev:hold').filter((event) => event.type !== 'attempt');
    expect(acquired.type === 'acquired' && acquired.holdLimit?.getTime()).toBe(
      state.acquiredAt!.getTime() + 20_000,
    );
    expect(acquired.type === 'acquired' && acquired.holdLimit).toEqual(state.holdLimit);
    expect(released.type === 'released' && released.holdUntil?.getTime()).toBe(
      state.acquiredAt!.getTime() + 10_000,
    );
    expect(released.type === 'released' && released.holdUntil).toEqual(state.holdUntil);
    // Without the options, or released after its minimum hold: null.
    expect(of('ev:hold:none').filter((event) => event.type !== 'attempt')).toEqual([
      expect.objectContaining({ type: 'acquired', holdLimit: null }),
      expect.objectContaining({ type: 'released', holdUntil: null }),
    ]);
    const late = await app.service.lock('ev:hold:late', 5_000, { minHoldMs: 0 });
    await late.unlock();
    expect(of('ev:hold:late').at(-1)).toMatchObject({ type: 'released', holdUntil: null });
  });

  it('emits force-released, then lost on the evicted holder', async () => {
    const lock = await app.service.lock('ev:force', 5_000, { ttlMs: 30_000 });
    expect(await app.service.forceRelease('ev:force', 'stuck')).toBe(true);
    await expect(lock.extend()).rejects.toBeInstanceOf(LockLostError);
    expect(await app.service.forceRelease('ev:force')).toBe(false);

    expect(types('ev:force')).toEqual([
      'attempt',
      'acquired',
      'force-released',
      'lost',
      'force-released',
    ]);
    const [, , forced, lost, again] = of('ev:force');
    expect(forced).toMatchObject({ reason: 'stuck', released: true });
    expect(lost).toMatchObject({ type: 'lost', fence: lock.fence });
    expect(lost.type === 'lost' && lost.error).toBe(lock.signal.reason);
    expect(again).toMatchObject({ reason: undefined, released: false });
  });

  it('emits acquired then expired-takeover when the previous holder process died', async () => {
    const child = spawnSupport('hold-lock.js', {
      kind: db.kind,
      url: db.url,
      name: 'ev:takeover',
      ttlMs: 500,
      rlock: { tableName, holder: 'doomed-child' },
    });
    const fence = Number((await waitForLine(child, /^HELD \d+/)).split(' ')[1]);
    child.kill('SIGKILL');
    const lock = await app.service.lock('ev:takeover', 20_000);
    await lock.unlock();

    const sequence = types('ev:takeover').filter((type) => type !== 'attempt');
    expect(sequence).toEqual(['acquired', 'expired-takeover', 'released']);
    const [acquired, takeover] = of('ev:takeover').filter((event) => event.type !== 'attempt');
    expect(acquired).toMatchObject({ fence: fence + 1, lastOutcome: 'expired' });
    expect(takeover).toMatchObject({ type: 'expired-takeover', fence: fence + 1 });
    const lastError = takeover.type === 'expired-takeover' ? takeover.lastError : null;
    expect(lastError).toBeInstanceOf(LeaseExpiredError);
    expect(lastError).toMatchObject({ holder: 'doomed-child', fence });
    expect(of('ev:takeover')[0].type).toBe('attempt');
  });

  it('emits nothing to a subscriber that left', async () => {
    subscription.unsubscribe();
    const lock = await app.service.lock('ev:quiet', 5_000);
    await lock.unlock();
    expect(events).toEqual([]);
  });
});

describe.each(testDatabases())('RLockService logging on $label', (db) => {
  const tableName = uniqueTableName('rlock_log');
  let logger: CapturingLogger;

  afterEach(() => Logger.overrideLogger(new ConsoleLogger()));

  async function run(logStoredErrors: boolean | undefined) {
    const app = await createTestApp(db, { tableName, holder: 'log-app', logStoredErrors });
    // Test.createTestingModule installs its own logger at compile(): replace it afterwards.
    logger = new CapturingLogger();
    Logger.overrideLogger(logger);
    const name = `log:${String(logStoredErrors)}`;
    const first = await app.service.lock(name, 5_000, { ttlMs: 30_000 });
    await first.unlock(new Error('secret payload 4711'));
    const second = await app.service.lock(name, 5_000, { ttlMs: 30_000 });
    await app.service.forceRelease(name, 'operator says so');
    await expect(second.extend()).rejects.toBeInstanceOf(LockLostError);
    await app.close();
    return logger.lines.filter((line) => line.message.includes(`"${name}"`));
  }

  it('logs grants and releases at debug, losses at warn, and no stored error by default', async () => {
    const lines = await run(undefined);
    const levelOf = (text: string) => lines.find((line) => line.message.includes(text))?.level;
    expect(levelOf('Acquired the lock')).toBe('debug');
    expect(levelOf('Released the lock')).toBe('debug');
    expect(levelOf('Force-released the lock')).toBe('log');
    expect(levelOf('is no longer held')).toBe('warn');
    expect(lines.some((line) => line.message.includes('the previous holding ended: error'))).toBe(
      true,
    );
    expect(lines.some((line) => line.message.includes('secret payload 4711'))).toBe(false);
  });

  it('shows the stored error in the grant line with logStoredErrors: true', async () => {
    const lines = await run(true);
    const grant = lines.find((line) => line.message.includes('the previous holding ended: error'));
    expect(grant?.message).toContain('Error: secret payload 4711');
  });
});
