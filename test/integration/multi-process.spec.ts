import { spawnSupport, runToEnd } from '../support/child-process';
import { testDatabases, uniqueTableName } from '../support/databases';
import { createTestApp, type TestApp } from '../support/app';

const PROCESSES = 4;
const ITERATIONS = 200;

describe.each(testDatabases())('mutual exclusion across processes on $label', (db) => {
  const tableName = uniqueTableName();
  const counterTable = uniqueTableName('rlock_counter');
  let app: TestApp;

  beforeAll(async () => {
    app = await createTestApp(db, { tableName });
    await app.dataSource.query(
      `CREATE TABLE ${counterTable} (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)`,
    );
    await app.dataSource.query(`INSERT INTO ${counterTable} (id, value) VALUES (1, 0)`);
  });
  afterAll(async () => {
    await app?.dataSource.query(`DROP TABLE ${counterTable}`);
    await app?.close();
  });

  it(`${PROCESSES} processes × ${ITERATIONS} read-modify-write sections lose no increment`, async () => {
    const started = performance.now();
    const outputs = await Promise.all(
      Array.from({ length: PROCESSES }, () =>
        runToEnd(
          spawnSupport('counter-worker.js', {
            kind: db.kind,
            url: db.url,
            rlock: { tableName },
            name: 'shared-counter',
            counterTable,
            iterations: ITERATIONS,
          }),
        ),
      ),
    );
    const seconds = (performance.now() - started) / 1000;
    const grants = outputs
      .map((out) => JSON.parse(out.trim().split('\n').pop()!) as { grants: [number, number][] })
      .flatMap((worker) => worker.grants)
      .sort((x, y) => x[0] - y[0]);
    const [{ value }] = await app.dataSource.query(
      `SELECT value FROM ${counterTable} WHERE id = 1`,
    );
    const acquisitions = PROCESSES * ITERATIONS;
    const lost = acquisitions - Number(value);
    // Each section read a distinct counter value: a repeated value is an overlap.
    const overlaps = grants.filter((g, i) => i > 0 && g[0] === grants[i - 1][0]).length;
    const fenceInversions = grants.filter((g, i) => i > 0 && g[1] <= grants[i - 1][1]).length;
    console.log(
      `[multi-process] ${db.label}: ${PROCESSES} processes × ${ITERATIONS} = ${acquisitions} acquisitions, ` +
        `counter ${value}, lost increments ${lost}, overlaps ${overlaps}, fence inversions ${fenceInversions}, ` +
        `${seconds.toFixed(1)} s (${(acquisitions / seconds).toFixed(0)} sections/s)`,
    );
    expect(grants).toHaveLength(acquisitions);
    expect(Number(value)).toBe(acquisitions);
    expect(overlaps).toBe(0);
    expect(fenceInversions).toBe(0);
  }, 300_000);
});
