// Child process: takes a lock, prints "HELD <fence>" and keeps it (renewing) until killed.
const { startChildApp } = require('./child-app');

(async () => {
  const config = JSON.parse(process.argv[2]);
  const { service } = await startChildApp(config);
  const lock = await service.lock(config.name, 30_000, { ttlMs: config.ttlMs });
  process.stdout.write(`HELD ${lock.fence}\n`);
  setInterval(() => undefined, 1000);
})().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error) + '\n');
  process.exit(1);
});
