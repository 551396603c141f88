import { RemoteError } from '../../lib';
import { createTestApp, type TestApp } from '../support/app';
import { testDatabases, uniqueTableName } from '../support/databases';

/** What an HTTP client library might throw: an error carrying the API's error body as fields. */
class ApiError extends Error {
  constructor(
    message: string,
    readonly body: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'ApiError';
    // The body's fields are copied onto the error, whatever their names.
    Object.assign(this, body);
  }
}

/* eslint-disable no-prototype-builtins -- the members a stored field could shadow, called on purpose */
/** Checks that the members an error inherits still work. */
function expectWorking(error: Error | null, shown: string): void {
  expect(error).toBeInstanceOf(Error);
  expect(String(error)).toBe(shown);
  expect(`${error}`).toBe(shown);
  expect(error!.toString()).toBe(shown);
  expect(error!.valueOf()).toBe(error);
  expect(error!.hasOwnProperty('message')).toBe(true);
  expect(error!.isPrototypeOf({})).toBe(false);
  expect(error!.propertyIsEnumerable('message')).toBe(false);
}
/* eslint-enable no-prototype-builtins */

describe.each(testDatabases())('stored errors on $label', (db) => {
  const tableName = uniqueTableName('rlock_se');
  let a: TestApp;
  let b: TestApp;

  beforeAll(async () => {
    a = await createTestApp(db, { tableName, errors: [ApiError], holder: 'app-a' });
    // logStoredErrors: the next holder's log line formats the stored error too.
    b = await createTestApp(db, { tableName, holder: 'app-b', logStoredErrors: true });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
  });

  it('fields named toString, valueOf, hasOwnProperty, … do not break the next holder’s lastError', async () => {
    const name = 'shadowing-fields';
    const body = {
      toString: 'x',
      valueOf: 'y',
      hasOwnProperty: 'z',
      isPrototypeOf: 1,
      propertyIsEnumerable: null,
      toLocaleString: { nested: true },
      constructor: 'c',
      status: 422,
    };
    // `constructor`, `__proto__` and `prototype` are never stored.
    const { constructor: _dropped, ...stored } = body;
    const first = await a.service.lock(name, 5_000);
    await first.unlock(new ApiError('the API refused the request', body));

    // The process that knows the class rebuilds it (inspect() reads the same column).
    const state = await a.service.inspect(name);
    expectWorking(state!.lastError, 'ApiError: the API refused the request');
    expect(state!.lastError).toBeInstanceOf(ApiError);
    expect((state!.lastError as ApiError).body).toEqual(stored);

    // Another process, which does not know ApiError, gets a RemoteError.
    const next = await b.service.lock(name, 5_000);
    expectWorking(next.lastError, 'ApiError: the API refused the request');
    expect(next.lastError).toBeInstanceOf(RemoteError);
    expect(next.lastError).toMatchObject({
      status: 422,
      body: stored,
      shadowedFields: {
        toString: 'x',
        valueOf: 'y',
        hasOwnProperty: 'z',
        isPrototypeOf: 1,
        propertyIsEnumerable: null,
        toLocaleString: { nested: true },
      },
    });
    await next.unlock();
  });

  it('a thrown plain object with such fields comes back as a working error', async () => {
    const name = 'shadowing-object';
    await expect(
      a.service.withLock(name, 5_000, () => {
        throw { message: 'bad request', toString: 'x', valueOf: 'y', statusCode: 400 };
      }),
    ).rejects.toMatchObject({ message: 'bad request' });
    const next = await b.service.lock(name, 5_000);
    expectWorking(next.lastError, 'Error: bad request');
    expect(next.lastError).toMatchObject({
      statusCode: 400,
      shadowedFields: { toString: 'x', valueOf: 'y' },
    });
    await next.unlock();
  });
});
