// Child process of the multi-process test: N times, take the lock, read the shared
// counter, yield, write counter + 1, release. Prints one JSON line with what it saw.
const { startChildApp } = require('./child-app');

(async () => {
  const config = JSON.parse(process.argv[2]);
  const { service, dataSource } = await startChildApp(config);
  const q = (sql) => (config.kind === 'postgres' ? sql.replace(/\?/g, () => `$1`) : sql);
  const grants = [];
  const started = Date.now();
  for (let i = 0; i < config.iterations; i++) {
    const lock = await service.lock(config.name, 120_000);
    const rows = await dataSource.query(q(`SELECT value FROM ${config.counterTable} WHERE id = 1`));
    const value = Number(rows[0].value);
    await new Promise((resolve) => setImmediate(resolve));
    await dataSource.query(q(`UPDATE ${config.counterTable} SET value = ? WHERE id = 1`), [value + 1]);
    grants.push([value, lock.fence]);
    await lock.unlock();
  }
  process.stdout.write(JSON.stringify({ pid: process.pid, grants, ms: Date.now() - started }) + '\n');
  process.exit(0);
})().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error) + '\n');
  process.exit(1);
});
