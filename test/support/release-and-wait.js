// Child process: takes a lock with the given options, releases it at once with an error,
// prints "RELEASED <fence>" and stays alive until killed.
const { startChildApp } = require('./child-app');

(async () => {
  const config = JSON.parse(process.argv[2]);
  const { service } = await startChildApp(config);
  const lock = await service.lock(config.name, 30_000, config.options);
  await lock.unlock(new Error('left by the child'));
  process.stdout.write(`RELEASED ${lock.fence}\n`);
  setInterval(() => undefined, 1000);
})().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error) + '\n');
  process.exit(1);
});
