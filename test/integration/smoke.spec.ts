import { createTestApp } from '../support/app';
import { testDatabases, uniqueTableName } from '../support/databases';

describe.each(testDatabases())('smoke on $label', (db) => {
  it('locks and unlocks', async () => {
    const app = await createTestApp(db, { tableName: uniqueTableName() });
    const lock = await app.service.lock('a', 1000);
    expect(lock.fence).toBeGreaterThan(0);
    expect(await app.service.tryLock('a')).toBeNull();
    await lock.unlock(new Error('boom'));
    const next = await app.service.lock('a', 1000);
    expect(next.lastError?.message).toBe('boom');
    expect(next.fence).toBe(lock.fence + 1);
    await next.unlock();
    await app.close();
  });
});
