import { HttpException } from '@nestjs/common';
import { LeaseExpiredError, RemoteError, RemoteLockError } from '../../lib';
import { ErrorCodec } from '../../lib/errors/error-codec';

class RecoverableError extends Error {
  constructor(
    message: string,
    readonly attempts: number,
  ) {
    super(message);
    this.name = 'RecoverableError';
  }
}
class UnnamedError extends Error {}

const codec = (
  maxBytes = 8192,
  includeStack = false,
  errors = [RecoverableError, UnnamedError, HttpException],
) => new ErrorCodec(errors, { maxBytes, includeStack });

describe('ErrorCodec', () => {
  it('rebuilds a registered class with its message and own fields', () => {
    const c = codec();
    const back = c.decode(c.encode(new RecoverableError('disk full', 3)));
    expect(back).toBeInstanceOf(RecoverableError);
    expect(back.message).toBe('disk full');
    expect(back.name).toBe('RecoverableError');
    expect((back as RecoverableError).attempts).toBe(3);
  });

  it('finds a class by its constructor name when the instance keeps the name "Error"', () => {
    const c = codec();
    const back = c.decode(c.encode(new UnnamedError('x')));
    expect(back).toBeInstanceOf(UnnamedError);
  });

  it('rebuilds an HttpException with its status', () => {
    const c = codec();
    const back = c.decode(c.encode(new HttpException('gone', 410)));
    expect(back).toBeInstanceOf(HttpException);
    expect((back as HttpException).getStatus()).toBe(410);
  });

  it('returns an unknown class as a RemoteError keeping name, message and code', () => {
    const c = codec(8192, false, []);
    const error = Object.assign(new RecoverableError('nope', 1), { code: 'E_NOPE' });
    const back = c.decode(c.encode(error));
    expect(back).toBeInstanceOf(RemoteError);
    expect(back).toBeInstanceOf(RemoteLockError);
    expect(back.name).toBe('RecoverableError');
    expect(back.message).toBe('nope');
    expect((back as unknown as { code: string }).code).toBe('E_NOPE');
  });

  it.each([
    ['a string', 'plain text', 'plain text'],
    ['undefined', undefined, 'A non-Error value was thrown (undefined).'],
    ['null', null, 'A non-Error value was thrown (null).'],
    ['a number', 42, '42'],
  ])('normalizes %s', (_kind, thrown, message) => {
    const c = codec();
    const back = c.decode(c.encode(thrown));
    expect(back).toBeInstanceOf(Error);
    expect(back.message).toBe(message);
  });

  it('keeps message and fields of a plain object', () => {
    const c = codec();
    const back = c.decode(c.encode({ message: 'obj', status: 7 }));
    expect(back.message).toBe('obj');
    expect((back as unknown as { status: number }).status).toBe(7);
  });

  it('survives circular structures', () => {
    const c = codec();
    const error = new Error('loop') as Error & { self?: unknown; data?: Record<string, unknown> };
    error.self = error;
    const data: Record<string, unknown> = {};
    data.me = data;
    error.data = data;
    const back = c.decode(c.encode(error)) as unknown as { self: unknown; data: { me: unknown } };
    expect(back.self).toBe('[Circular]');
    expect(back.data.me).toBe('[Circular]');
  });

  it('caps a huge error to the byte limit, keeping the start of the message', () => {
    const c = codec(1024);
    const json = c.encode(
      Object.assign(new Error('x'.repeat(100_000)), { blob: 'y'.repeat(50_000) }),
    );
    expect(Buffer.byteLength(json)).toBeLessThanOrEqual(1024);
    const back = c.decode(json);
    expect(back.message.startsWith('xxxx')).toBe(true);
    expect(back.message.endsWith('[truncated]')).toBe(true);
    expect((back as unknown as { truncated: boolean }).truncated).toBe(true);
  });

  it('stores ASCII only, and non-ASCII text comes back intact', () => {
    const c = codec();
    const json = c.encode(new Error('Größe 💥 ünïcödé'));
    expect(/^[\x20-\x7e]*$/.test(json)).toBe(true);
    expect(c.decode(json).message).toBe('Größe 💥 ünïcödé');
  });

  it('keeps the stack only when enabled', () => {
    const error = new Error('s');
    expect(codec(8192, false).decode(codec(8192, false).encode(error)).stack).not.toContain(
      'error-codec.spec',
    );
    expect(codec(8192, true).decode(codec(8192, true).encode(error)).stack).toContain(
      'error-codec.spec',
    );
  });

  it('keeps a cause chain', () => {
    const c = codec();
    const back = c.decode(
      c.encode(new Error('outer', { cause: new RecoverableError('inner', 1) })),
    );
    expect(back.cause).toBeInstanceOf(RecoverableError);
  });

  it('never pollutes prototypes from stored JSON', () => {
    const c = codec();
    const evil = [
      '{"name":"Error","message":"m","fields":{"__proto__":{"polluted":true}}}',
      '{"name":"Error","message":"m","__proto__":{"polluted":true}}',
      '{"name":"Error","message":"m","constructor":{"prototype":{"polluted":true}}}',
      '{"name":"Error","message":"m","fields":{"constructor":{"prototype":{"polluted":true}}}}',
    ];
    for (const json of evil) {
      const back = c.decode(json);
      expect(back.message).toBe('m');
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      expect((back as unknown as Record<string, unknown>).polluted).toBeUndefined();
      expect(Object.getPrototypeOf(back)).toBe(Error.prototype);
    }
  });

  describe('stored fields named after inherited members', () => {
    /** Every member of Object.prototype, as an API error body might carry them. */
    const objectMembers = Object.getOwnPropertyNames(Object.prototype).filter(
      (key) => key !== '__proto__' && key !== 'constructor',
    );

    /* eslint-disable no-prototype-builtins -- the members a stored field could shadow, called on purpose */
    /** Checks that the members an error inherits still work. */
    const expectWorking = (back: Error, shown: string) => {
      expect(String(back)).toBe(shown);
      expect(`${back}`).toBe(shown);
      expect(back + '').toBe(shown);
      expect(back.toString()).toBe(shown);
      expect(back.valueOf()).toBe(back);
      expect(back.toLocaleString()).toBe(shown);
      expect(back.hasOwnProperty('message')).toBe(true);
      expect(back.propertyIsEnumerable('message')).toBe(false);
      expect(Error.prototype.isPrototypeOf(back)).toBe(true);
      expect(back.isPrototypeOf({})).toBe(false);
      expect(Object.getPrototypeOf(back).constructor).toBe(back.constructor);
      expect(() => JSON.stringify(back)).not.toThrow();
    };

    /* eslint-enable no-prototype-builtins */

    it('keeps them in shadowedFields, and the rebuilt error keeps working', () => {
      const c = codec();
      const error = new Error('api failed') as Error & Record<string, unknown>;
      for (const key of objectMembers) error[key] = `stored ${key}`;
      error.status = 400;
      const back = c.decode(c.encode(error)) as Error & Record<string, unknown>;
      expectWorking(back, 'Error: api failed');
      expect(back.status).toBe(400);
      expect(back.shadowedFields).toEqual(
        Object.fromEntries(objectMembers.map((key) => [key, `stored ${key}`])),
      );
      for (const key of objectMembers) expect(Object.hasOwn(back, key)).toBe(false);
    });

    it('does so for a thrown plain object (an API error body)', () => {
      const c = codec();
      const back = c.decode(
        c.encode({ message: 'bad request', toString: 'x', valueOf: 'y', statusCode: 400 }),
      ) as Error & Record<string, unknown>;
      expectWorking(back, 'Error: bad request');
      expect(back.statusCode).toBe(400);
      expect(back.shadowedFields).toEqual({ toString: 'x', valueOf: 'y' });
    });

    it('does so for JSON written by hand, with nested values and in a cause', () => {
      const c = codec();
      const fields =
        '{"toString":{"a":1},"valueOf":null,"hasOwnProperty":[1],"constructor":"c","__proto__":{"polluted":true},"ok":1}';
      const back = c.decode(
        `{"type":"Error","name":"Error","message":"m","fields":${fields},"cause":{"name":"TypeError","message":"inner","fields":${fields}}}`,
      ) as Error & Record<string, unknown>;
      expectWorking(back, 'Error: m');
      expectWorking(back.cause as Error, 'TypeError: inner');
      expect(back.cause).toBeInstanceOf(TypeError);
      expect(back.ok).toBe(1);
      expect(back.shadowedFields).toEqual({
        toString: { a: 1 },
        valueOf: null,
        hasOwnProperty: [1],
      });
      expect(back.polluted).toBeUndefined();
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    });

    it("does not shadow the methods of the error's own class", () => {
      const c = codec();
      const error = Object.assign(new HttpException('gone', 410), { getStatus: 'x' });
      const back = c.decode(c.encode(error)) as HttpException & Record<string, unknown>;
      expect(back).toBeInstanceOf(HttpException);
      expect(back.getStatus()).toBe(410);
      expect(back.shadowedFields).toEqual({ getStatus: 'x' });
      expect(String(back)).toBe('HttpException: gone');
    });

    it('finds the class from the prototype, whatever an own constructor field says', () => {
      const c = codec();
      const error = Object.assign(new RecoverableError('x', 1), { constructor: 'c' });
      const back = c.decode(c.encode(error));
      expect(back).toBeInstanceOf(RecoverableError);
      expect(String(back)).toBe('RecoverableError: x');
    });

    it('does not add shadowedFields when no field shadows anything', () => {
      const c = codec();
      const back = c.decode(c.encode(new RecoverableError('x', 1)));
      expect('shadowedFields' in back).toBe(false);
    });
  });

  it('returns a RemoteError for unreadable JSON instead of throwing', () => {
    const c = codec();
    expect(c.decode('not json')).toBeInstanceOf(RemoteError);
    expect(c.decode('[1,2]')).toBeInstanceOf(RemoteError);
  });

  it('rebuilds the LeaseExpiredError the database writes on a takeover', () => {
    const c = codec();
    const back = c.decode(
      '{"type":"LeaseExpiredError","name":"LeaseExpiredError","message":"gone","fields":{"holder":"h:1","fence":12,"expiredAt":1700000000000}}',
    );
    expect(back).toBeInstanceOf(LeaseExpiredError);
    expect(back).toMatchObject({ holder: 'h:1', fence: 12, expiredAt: 1700000000000 });
  });
});
