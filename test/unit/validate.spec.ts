import { InvalidArgumentError } from '../../lib';
import {
  assertDuration,
  assertLockName,
  assertOptions,
  assertTableName,
} from '../../lib/internal/validate';
import { resolveOptions } from '../../lib/internal/resolve-options';

describe('argument validation', () => {
  it.each([
    ['empty', ''],
    ['too long', 'x'.repeat(256)],
    ['NUL', 'a\u0000b'],
    ['lone surrogate', 'a\ud800'],
    ['number', 42],
    ['null', null],
    ['undefined', undefined],
    ['object', { toString: () => 'x' }],
  ])('rejects a lock name that is %s', (_case, name) => {
    expect(() => assertLockName(name)).toThrow(InvalidArgumentError);
  });

  it.each([
    ['a'],
    ['x'.repeat(255)],
    ['💥'.repeat(255)],
    ["'; DROP TABLE rlock; --"],
    ['ünï cödé '],
  ])('accepts the lock name %p', (name) => {
    expect(() => assertLockName(name)).not.toThrow();
  });

  it.each([-1, NaN, Infinity, -Infinity, 1.5, 2 ** 31, '100', null])(
    'rejects the duration %p',
    (value) => {
      expect(() => assertDuration(value, 'ttlMs', 0)).toThrow(InvalidArgumentError);
    },
  );

  it('names the argument in the error', () => {
    try {
      assertDuration(-5, 'acquireTimeoutMs', 0);
      throw new Error('not thrown');
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect((error as InvalidArgumentError).argument).toBe('acquireTimeoutMs');
      expect((error as Error).message).toContain('acquireTimeoutMs');
    }
  });

  it('rejects unknown option keys and non-objects', () => {
    expect(() => assertOptions({ ttl: 5 }, 'options', ['ttlMs'])).toThrow(/unknown option "ttl"/);
    expect(() => assertOptions([], 'options', ['ttlMs'])).toThrow(InvalidArgumentError);
    expect(() => assertOptions('x', 'options', ['ttlMs'])).toThrow(InvalidArgumentError);
    expect(() => assertOptions(undefined, 'options', ['ttlMs'])).not.toThrow();
  });

  it.each(['rlock', 'app.rlock', 'Locks_2'])('accepts the table name %p', (name) => {
    expect(() => assertTableName(name)).not.toThrow();
  });

  it.each(['', 'a b', 'x;drop', '1abc', 'a.b.c', '"x"', 'x'.repeat(64)])(
    'rejects the table name %p',
    (name) => {
      expect(() => assertTableName(name)).toThrow(InvalidArgumentError);
    },
  );
});

describe('resolveOptions', () => {
  it('fills in the defaults', () => {
    const options = resolveOptions({});
    expect(options).toMatchObject({
      tableName: 'rlock',
      acquireTimeoutMs: 30_000,
      ttlMs: 30_000,
      backoffMinMs: 5,
      backoffMaxMs: 200,
      maxErrorBytes: 8192,
      includeStack: false,
    });
    expect(options.holder).toMatch(/:\d+$/);
  });

  it.each([
    [{ ttlMs: 10 }],
    [{ acquireTimeoutMs: -1 }],
    [{ backoff: { minMs: 50, maxMs: 10 } }],
    [{ errors: [class NotAnError {}] }],
    [{ maxErrorBytes: 10 }],
    [{ holder: '' }],
    [{ tableName: 'bad name' }],
    [{ unknownOption: true }],
    [{ includeStack: 'yes' }],
  ])('rejects %p', (options) => {
    expect(() => resolveOptions(options as never)).toThrow(InvalidArgumentError);
  });
});
