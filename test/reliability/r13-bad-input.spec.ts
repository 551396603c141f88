import {
  InvalidArgumentError,
  RLockModule,
  RemoteLockError,
  type RemoteLock,
  type RLockService,
} from '../../lib';
import { testDatabases } from '../support/databases';
import { recordFigures } from './support/figures';
import { ReliabilityDb } from './support/reliability-db';
import { StatementCounter } from './support/statement-counter';

// R13: every kind of bad argument through the public API. Each must be refused with an
// InvalidArgumentError before any database call (the driver sees no statement and no row
// appears), or normalized as documented; nothing may be left locked.
type Call = (service: RLockService, name: string) => Promise<unknown> | unknown;

const BAD_NAMES: Array<[string, unknown]> = [
  ['empty', ''],
  ['256 characters', 'x'.repeat(256)],
  ['256 accented code points', 'é'.repeat(256)],
  ['NUL', '\u0000'],
  ['NUL inside', 'a\u0000b'],
  ['lone surrogate', '\ud800'],
  ['number', 123],
  ['null', null],
  ['undefined', undefined],
  ['object', {}],
  ['array', ['a']],
  ['boxed string', Object('a')],
  ['boolean', true],
  ['function', () => 'a'],
  ['symbol', Symbol('a')],
];
const BAD_DURATIONS: Array<[string, unknown]> = [
  ['-1', -1],
  ['NaN', NaN],
  ['Infinity', Infinity],
  ['-Infinity', -Infinity],
  ['1.5', 1.5],
  ['2^31', 2 ** 31],
  ['MAX_VALUE', Number.MAX_VALUE],
  ['string', '100'],
  ['null', null],
  ['object', {}],
  ['boolean', true],
  ['bigint', BigInt(100)],
];
const BAD_TTLS: Array<[string, unknown]> = [...BAD_DURATIONS, ['0', 0], ['99 (below 100)', 99]];
const BAD_OPTIONS: Array<[string, unknown]> = [
  ['string', 'x'],
  ['number', 42],
  ['array', []],
  ['function', () => 1],
  ['null', null],
  ['unknown key', { ttl: 1000 }],
  ['reentrant string', { reentrant: 'yes' }],
  ['signal object', { signal: {} }],
  ['signal string', { signal: 'abort' }],
];

function invalidCases(): Array<[string, Call]> {
  const cases: Array<[string, Call]> = [];
  for (const [label, name] of BAD_NAMES) {
    cases.push([`lock(name: ${label})`, (s) => s.lock(name as string, 100)]);
    cases.push([`tryLock(name: ${label})`, (s) => s.tryLock(name as string)]);
    cases.push([`withLock(name: ${label})`, (s) => s.withLock(name as string, 100, () => 1)]);
    cases.push([`inspect(name: ${label})`, (s) => s.inspect(name as string)]);
    cases.push([`forceRelease(name: ${label})`, (s) => s.forceRelease(name as string)]);
  }
  for (const [label, value] of BAD_DURATIONS) {
    cases.push([`lock(acquireTimeoutMs: ${label})`, (s, n) => s.lock(n, value as number)]);
    cases.push([
      `withLock({ acquireTimeoutMs: ${label} })`,
      (s, n) => s.withLock(n, { acquireTimeoutMs: value as number }, () => 1),
    ]);
    // purge accepts ages up to Number.MAX_SAFE_INTEGER / 1000 ms.
    if (label !== '2^31')
      cases.push([
        `purge({ olderThan: ${label} })`,
        (s) => s.purge({ olderThan: value as number }),
      ]);
  }
  for (const [label, value] of BAD_TTLS) {
    cases.push([`lock({ ttlMs: ${label} })`, (s, n) => s.lock(n, 100, { ttlMs: value as number })]);
    cases.push([
      `tryLock({ ttlMs: ${label} })`,
      (s, n) => s.tryLock(n, { ttlMs: value as number }),
    ]);
  }
  for (const [label, value] of BAD_OPTIONS) {
    cases.push([`lock(options: ${label})`, (s, n) => s.lock(n, 100, value as never)]);
    cases.push([`tryLock(options: ${label})`, (s, n) => s.tryLock(n, value as never)]);
    // A number is withLock's acquire-timeout shorthand.
    if (label !== 'number')
      cases.push([`withLock(options: ${label})`, (s, n) => s.withLock(n, value as never, () => 1)]);
  }
  cases.push(['withLock(fn: string)', (s, n) => s.withLock(n, 100, 'fn' as never)]);
  cases.push(['withLock(fn: undefined)', (s, n) => s.withLock(n, 100, undefined as never)]);
  cases.push(['forceRelease(reason: number)', (s, n) => s.forceRelease(n, 42 as never)]);
  cases.push([
    'forceRelease(reason: 1001 characters)',
    (s, n) => s.forceRelease(n, 'r'.repeat(1001)),
  ]);
  cases.push(['purge(undefined)', (s) => s.purge(undefined as never)]);
  cases.push(['purge(null)', (s) => s.purge(null as never)]);
  cases.push(['purge({})', (s) => s.purge({} as never)]);
  cases.push(['purge({ olderThan, extra })', (s) => s.purge({ olderThan: 1, extra: 1 } as never)]);
  return cases;
}

/** Thrown values handed to unlock(error) or thrown inside withLock: each must be stored, never fail the release. */
function thrownValues(): Array<[string, () => unknown]> {
  const circular: any = { message: 'circular object' };
  circular.self = circular;
  const circularError: any = new Error('circular error');
  circularError.cause = circularError;
  circularError.self = circularError;
  const getterError = new Error('throwing getter');
  Object.defineProperty(getterError, 'boom', {
    enumerable: true,
    get: () => {
      throw new Error('getter');
    },
  });
  const hostile = new Proxy(
    {},
    {
      get: () => {
        throw new Error('trap');
      },
      ownKeys: () => {
        throw new Error('trap');
      },
      getOwnPropertyDescriptor: () => {
        throw new Error('trap');
      },
      getPrototypeOf: () => {
        throw new Error('trap');
      },
    },
  );
  const nonStringMessage: any = new Error('x');
  nonStringMessage.message = { nested: true };
  nonStringMessage.name = 123;
  return [
    ['string', () => 'a plain string'],
    [
      'plain object with code',
      () => ({ message: 'object', code: 'E_OBJ', extra: { deep: [1, 2] } }),
    ],
    ['empty object', () => ({})],
    ['number', () => 42],
    ['boolean', () => false],
    ['symbol', () => Symbol('thrown')],
    ['bigint', () => BigInt(7)],
    ['array', () => [1, 'two']],
    ['circular object', () => circular],
    ['circular error', () => circularError],
    ['error with a throwing getter', () => getterError],
    ['proxy whose every trap throws', () => hostile],
    ['error with non-string message and name', () => nonStringMessage],
    ['1 MB message', () => new Error('x'.repeat(1_000_000))],
    [
      '100 000 fields',
      () =>
        Object.assign(
          new Error('wide'),
          Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`f${i}`, i])),
        ),
    ],
    ['undefined (thrown in withLock)', () => undefined],
  ];
}

describe.each(testDatabases())('R13 bad input on $label', (db) => {
  let rdb: ReliabilityDb;
  beforeAll(async () => {
    rdb = await ReliabilityDb.open(db, { maxErrorBytes: 8_192 });
  });
  afterAll(async () => {
    await rdb?.close();
  });

  it('refuses every bad argument with InvalidArgumentError before any database call', async () => {
    const service = rdb.service;
    const outcomes: Array<{ input: string; outcome: string; statements: number; row: boolean }> =
      [];
    const cases = invalidCases();
    for (const [index, [input, call]] of cases.entries()) {
      const name = `r13:${index}`;
      const counter = new StatementCounter(rdb.app.dataSource, db.kind);
      let outcome: string;
      try {
        await call(service, name);
        outcome = 'accepted';
      } catch (error) {
        outcome =
          error instanceof InvalidArgumentError && typeof error.argument === 'string'
            ? 'InvalidArgumentError'
            : `${(error as Error)?.constructor?.name}: ${(error as Error)?.message}`;
      } finally {
        counter.dispose();
      }
      const row = (await service.inspect(name)) !== null;
      outcomes.push({ input, outcome, statements: counter.count, row });
    }
    // Module options are checked when the module is configured, before any connection.
    const moduleCases: Array<[string, unknown]> = [
      ['ttlMs -1', { ttlMs: -1 }],
      ['acquireTimeoutMs NaN', { acquireTimeoutMs: NaN }],
      ['tableName injection', { tableName: 'rlock; DROP TABLE users' }],
      ['tableName quote', { tableName: 'a"b' }],
      ['unknown option', { ttl: 5 }],
      ['backoff min > max', { backoff: { minMs: 500, maxMs: 10 } }],
      ['errors not classes', { errors: ['Error'] }],
      ['maxErrorBytes 10', { maxErrorBytes: 10 }],
      ['holder empty', { holder: '' }],
      ['options a string', 'x'],
    ];
    for (const [input, options] of moduleCases) {
      let outcome = 'accepted';
      try {
        RLockModule.forRoot(options as never);
      } catch (error) {
        outcome = error instanceof InvalidArgumentError ? 'InvalidArgumentError' : String(error);
      }
      outcomes.push({ input: `RLockModule.forRoot(${input})`, outcome, statements: 0, row: false });
    }
    const wrong = outcomes.filter(
      (o) => o.outcome !== 'InvalidArgumentError' || o.statements > 0 || o.row,
    );
    const held = (await service.list()).filter((s) => s.status === 'held');
    recordFigures('R13a', 'bad input: arguments', db.label, 'r13-bad-input.spec.ts', {
      inputsTried: outcomes.length,
      invalidArgumentError: outcomes.filter((o) => o.outcome === 'InvalidArgumentError').length,
      withDatabaseCall: outcomes.filter((o) => o.statements > 0).length,
      rowsCreated: outcomes.filter((o) => o.row).length,
      leftLocked: held.length,
      wrong: wrong.map((w) => `${w.input} → ${w.outcome}`).slice(0, 10),
    });
    expect(wrong).toEqual([]);
    expect(held).toEqual([]);
  }, 120_000);

  it('stores every kind of thrown value without failing the release, and hands a readable error on', async () => {
    const service = rdb.service;
    const results: Array<{ input: string; outcome: string }> = [];
    for (const [index, [input, make]] of thrownValues().entries()) {
      const name = `r13:thrown:${index}`;
      let outcome: string;
      try {
        if (input.startsWith('undefined')) {
          await service
            .withLock(name, 1_000, () => {
              throw make();
            })
            .catch((thrown) => {
              if (thrown !== undefined)
                throw new Error('withLock did not rethrow the original value');
            });
        } else {
          const lock: RemoteLock = await service.lock(name, 1_000);
          await lock.unlock(make());
        }
        const next = await service.lock(name, 1_000);
        const e = next.lastError;
        const stored = (
          await rdb.exec(`SELECT last_error FROM ${rdb.table} WHERE name = ?`, [name])
        ).records[0];
        const size = Buffer.byteLength(
          String(stored.last_error ?? stored.LAST_ERROR ?? ''),
          'utf8',
        );
        await next.unlock();
        outcome =
          e instanceof Error && typeof e.message === 'string' && size <= 8_192
            ? `normalized (${e instanceof RemoteLockError ? 'RemoteLockError family' : e.constructor.name}, ${size} B)`
            : `bad lastError ${String(e)} (${size} B)`;
      } catch (error) {
        outcome = `FAILED ${(error as Error)?.constructor?.name}: ${(error as Error)?.message}`;
      }
      results.push({ input, outcome });
    }
    const held = (await service.list()).filter((s) => s.status === 'held');
    const failed = results.filter((r) => !r.outcome.startsWith('normalized'));
    recordFigures('R13b', 'bad input: thrown values', db.label, 'r13-bad-input.spec.ts', {
      valuesTried: results.length,
      normalized: results.length - failed.length,
      failed: failed.map((f) => `${f.input} → ${f.outcome}`),
      leftLocked: held.length,
    });
    expect(failed).toEqual([]);
    expect(held).toEqual([]);
  }, 120_000);
  it('takes odd but valid names byte-exactly, each its own lock', async () => {
    const service = rdb.service;
    const names = [
      'x'.repeat(255),
      '😀'.repeat(255),
      'é'.repeat(255),
      'a',
      'A',
      'a ',
      ' a',
      'é',
      'e\u0301',
      'ß',
      'ss',
      'İ',
      'i',
      '\t',
      '\n',
      '%',
      '_',
      '👩‍👩‍👧',
      '\u200b',
      'ﬁ',
      'fi',
    ];
    const locks = await Promise.all(names.map((name) => service.tryLock(name)));
    const states = await Promise.all(names.map((name) => service.inspect(name)));
    const distinct = locks.filter((l) => l !== null).length;
    const exact = states.filter((st, i) => st?.name === names[i] && st.status === 'held').length;
    await Promise.all(locks.map((l) => l?.unlock()));
    recordFigures('R13c', 'odd valid names', db.label, 'r13-bad-input.spec.ts', {
      namesTried: names.length,
      grantedAsDistinctLocks: distinct,
      storedByteExactly: exact,
    });
    expect(distinct).toBe(names.length);
    expect(exact).toBe(names.length);
  }, 60_000);
});
