import { RemoteLockError } from '../../lib';
import { testDatabases } from '../support/databases';
import { recordFigures } from './support/figures';
import { ReliabilityDb } from './support/reliability-db';

// R14: lock names and stored errors that carry SQL and JSON tricks. The schema, a victim
// table and another holder's row must stay unchanged, and no parsed error may pollute a
// prototype, whether the error went through unlock() or was written into the row by hand.
const polluted = () =>
  (({}) as any).polluted !== undefined ||
  (Object.prototype as any).polluted !== undefined ||
  (Error.prototype as any).polluted !== undefined ||
  (Function.prototype as any).polluted !== undefined;

function names(table: string, victim: string): string[] {
  return [
    `'; DROP TABLE ${victim}; --`,
    `" OR 1=1 --`,
    `a' OR '1'='1`,
    `x\\'; DELETE FROM ${table}; --`,
    `'); UPDATE ${table} SET token = NULL; --`,
    `\`; DROP TABLE ${victim}; #`,
    '$1',
    '?',
    '??',
    ':name',
    '@token',
    '%',
    '*/ SELECT 1 /*',
    '\\',
    '\\0',
    `${victim}`,
    'SELECT pg_sleep(5)',
    'SLEEP(5)',
    '{"__proto__":{"polluted":1}}',
    '__proto__',
    'constructor',
    'prototype',
    'toString',
    'hasOwnProperty',
    'NULL',
    'null',
    'undefined',
    '\u2028\u2029',
    '\u202eevil',
    '\\u0000',
    "' || (SELECT version()) || '",
  ];
}

/** Errors whose message, code, name and own fields carry the same tricks. */
function trickErrors(table: string): unknown[] {
  const withProtoKey = JSON.parse(
    '{"__proto__": {"polluted": true}, "message": "own __proto__ key"}',
  );
  const e1: any = new Error(`'); DROP TABLE ${table}; --`);
  e1.code = `" OR 1=1`;
  e1.payload = JSON.parse(
    '{"__proto__": {"polluted": true}, "constructor": {"prototype": {"polluted": true}}}',
  );
  const e2: any = new Error('{"__proto__":{"polluted":true}}');
  e2.name = '__proto__';
  const e3: any = new Error('constructor');
  e3.name = 'constructor';
  e3.constructor = { prototype: { polluted: true } };
  return [withProtoKey, e1, e2, e3, { name: 'hasOwnProperty', message: 'x', toString: 'y' }];
}

/** Stored error JSON written into a free row by hand, as a hostile or corrupt writer would. */
const HOSTILE_ROWS = [
  '{"__proto__":{"polluted":1},"name":"Error","message":"m"}',
  '{"type":"__proto__","name":"constructor","message":"m","fields":{"__proto__":{"polluted":1},"constructor":{"prototype":{"polluted":1}}}}',
  '{"constructor":{"prototype":{"polluted":1}}}',
  '{"type":"hasOwnProperty","name":"valueOf","message":"m"}',
  '{"type":"Object","name":"toString","message":"m","cause":{"__proto__":{"polluted":1}}}',
  '{"message":{"nested":1},"code":{"__proto__":{"polluted":1}}}',
  '{"fields":{"stack":"x","message":1,"name":2,"then":"not a thenable"}}',
  '{"cause":'.repeat(200) + '{}' + '}'.repeat(200),
  'not json',
  '[]',
  'null',
  '"string"',
  '',
  '{"message":"' + 'x'.repeat(60_000) + '"}',
];

describe.each(testDatabases())('R14 injection on $label', (db) => {
  let rdb: ReliabilityDb;
  let victim: string;
  beforeAll(async () => {
    rdb = await ReliabilityDb.open(db);
    victim = `${rdb.table}_victim`;
    await rdb.exec(`CREATE TABLE ${victim} (id INTEGER PRIMARY KEY, v VARCHAR(20))`);
    await rdb.exec(`INSERT INTO ${victim} (id, v) VALUES (1, 'intact')`);
  });
  afterAll(async () => {
    await rdb?.exec(`DROP TABLE IF EXISTS ${victim}`).catch(() => undefined);
    await rdb?.close();
  });

  it('treats SQL and JSON tricks in names and errors as plain data', async () => {
    const service = rdb.service;
    const schemaBefore = await rdb.schema([victim]);
    const sentinel = await service.lock('sentinel', 1_000, { ttlMs: 60_000 });
    const sentinelBefore = JSON.stringify(await service.inspect('sentinel'));
    const tricks = names(rdb.table, victim);
    const errors = trickErrors(rdb.table);
    const problems: string[] = [];

    // Names: each its own lock, stored as given, carrying an error full of tricks.
    const locks = await Promise.all(tricks.map((name) => service.tryLock(name)));
    if (locks.some((l) => l === null))
      problems.push('a trick name was not granted as its own lock');
    for (const [i, lock] of locks.entries()) {
      const state = await service.inspect(tricks[i]);
      if (state?.name !== tricks[i]) problems.push(`name not stored as given: ${tricks[i]}`);
      await lock?.unlock(errors[i % errors.length]);
    }
    for (const name of tricks) {
      const next = await service.lock(name, 1_000);
      const e = next.lastError;
      if (!(e instanceof Error) || polluted()) problems.push(`bad lastError after ${name}`);
      if (e && Object.getPrototypeOf(e) === null) problems.push('lastError without prototype');
      await next.unlock();
    }

    // Hand-written hostile rows.
    let hostileRead = 0;
    for (const [i, json] of HOSTILE_ROWS.entries()) {
      const name = `hostile:${i}`;
      await (await service.lock(name, 1_000)).unlock(new Error('to be replaced'));
      await rdb.exec(
        `UPDATE ${rdb.table} SET last_outcome = 'error', last_error = ? WHERE name = ?`,
        [json, name],
      );
      try {
        const next = await service.lock(name, 1_000);
        const e = next.lastError;
        const state = await service.inspect(name);
        await next.unlock();
        if (e instanceof Error && typeof e.message === 'string' && !polluted() && state !== null)
          hostileRead++;
        else problems.push(`hostile row ${i}: lastError ${String(e)}`);
        if (e && typeof (e as any).then === 'function')
          problems.push(`hostile row ${i}: lastError is a thenable`);
        if (e && !(e instanceof RemoteLockError) && e.constructor === Object)
          problems.push(`hostile row ${i}: plain object`);
      } catch (error) {
        problems.push(`hostile row ${i}: ${(error as Error).message}`);
      }
    }

    const schemaAfter = await rdb.schema([victim]);
    const victimRows = (await rdb.exec(`SELECT v FROM ${victim}`)).records;
    const sentinelAfter = JSON.stringify(await service.inspect('sentinel'));
    await sentinel.unlock();
    const rowCount = (await service.list()).length;
    recordFigures('R14', 'injection', db.label, 'r14-injection.spec.ts', {
      trickNames: tricks.length,
      trickErrors: errors.length,
      hostileStoredRows: HOSTILE_ROWS.length,
      hostileRowsReadSafely: `${hostileRead}/${HOSTILE_ROWS.length}`,
      schemaUnchanged: JSON.stringify(schemaBefore) === JSON.stringify(schemaAfter),
      victimTableIntact: victimRows.length === 1 && victimRows[0].v === 'intact',
      otherHoldersRowUnchanged: sentinelBefore === sentinelAfter,
      prototypesPolluted: polluted(),
      lockRows: `${rowCount} (expected ${tricks.length + HOSTILE_ROWS.length + 1})`,
      problems: problems.slice(0, 10),
    });
    expect(problems).toEqual([]);
    expect(schemaAfter).toEqual(schemaBefore);
    expect(victimRows).toEqual([{ v: 'intact' }]);
    expect(sentinelAfter).toBe(sentinelBefore);
    expect(polluted()).toBe(false);
    expect(rowCount).toBe(tricks.length + HOSTILE_ROWS.length + 1);
  }, 120_000);
});
