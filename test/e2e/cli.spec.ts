import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { ForceReleasedError, LockLostError, type RemoteLock } from '../../lib';
import { createTestApp, type TestApp } from '../support/app';
import { testDatabases, uniqueTableName, type TestDatabase } from '../support/databases';

const CLI = join(__dirname, '../../dist/cli/main.js');
/**
 * The lock global-setup builds dist/ under: other runs rebuild dist/ while this suite
 * runs, so each command runs holding it shared (never while a build writes the files).
 */
const BUILD_LOCK = '/tmp/nestjs-rlock-build.lock';

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built command line as a real child process (stdin is a pipe, not a terminal). */
function cli(...args: string[]): Promise<CliRun> {
  return new Promise((resolve) => {
    const command = ['-s', BUILD_LOCK, process.execPath, CLI, ...args];
    execFile('flock', command, { timeout: 30_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * Runs the command line on a pseudo-terminal (util-linux `script`), typing `answer` once
 * the question is asked and `beforeAnswer` (the operator thinking) has run.
 */
function cliOnTerminal(
  answer: string,
  args: string[],
  beforeAnswer: () => Promise<void> = async () => undefined,
): Promise<CliRun> {
  const command = ['flock', '-s', BUILD_LOCK, process.execPath, CLI, ...args].map(
    (a) => `'${a.replaceAll("'", `'\\''`)}'`,
  );
  return new Promise((resolve) => {
    const child = execFile(
      'script',
      ['-qec', command.join(' '), '/dev/null'],
      { timeout: 30_000 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
        resolve({ code, stdout, stderr });
      },
    );
    // Answer once the question is on the terminal.
    let asked = false;
    child.stdout!.on('data', (chunk) => {
      if (asked || !String(chunk).includes('[y/N]')) return;
      asked = true;
      void beforeAnswer().then(() => child.stdin!.end(`${answer}\n`));
    });
  });
}

/** Asserts the exit code, showing stderr when it differs (success writes nothing to stderr). */
function expectExit(run: CliRun, code: number): void {
  expect({ code: run.code, stderr: run.stderr }).toEqual({
    code,
    stderr: code === 0 ? '' : expect.any(String),
  });
}

/** The URL a user would type for this database. */
function userUrl(db: TestDatabase): string {
  return db.kind === 'sqlite' ? `sqlite:${db.url}` : db.url;
}

class DiskFullError extends Error {
  readonly code = 'ENOSPC';
  constructor(readonly device: string) {
    super(`disk full on ${device}`);
    this.name = 'DiskFullError';
  }
}

describe.each(testDatabases())('nestjs-rlock command line on $label', (db) => {
  const table = uniqueTableName('rlock_cli');
  let app: TestApp;
  let held: RemoteLock;
  const run = (...args: string[]) => cli(...args, '--url', userUrl(db), '--table', table);

  beforeAll(async () => {
    app = await createTestApp(db, { tableName: table, holder: 'worker-7' });
    const failed = await app.service.lock('cli:failed', 5_000);
    await failed.unlock(new DiskFullError('/dev/sdb'));
    const free = await app.service.lock('cli:free', 5_000);
    await free.unlock();
    held = await app.service.lock('cli:held', 5_000, { ttlMs: 120_000 });
  });
  afterAll(() => app.close());

  it('status prints every lock as a table', async () => {
    const { code, stdout, stderr } = await run('status');
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    const lines = stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(
      /^NAME\s+STATUS\s+HOLDER\s+FENCE\s+EXPIRES IN\s+HOLD\s+LAST TICK\s+LAST OUTCOME$/,
    );
    expect(lines).toHaveLength(4);
    expect(lines[1]).toMatch(/^cli:failed\s+free\s+-\s+\d+\s+-\s+-\s+-\s+error$/);
    expect(lines[2]).toMatch(/^cli:free\s+free\s+-\s+\d+\s+-\s+-\s+-\s+released$/);
    expect(lines[3]).toMatch(
      new RegExp(
        `^cli:held\\s+held\\s+worker-7\\s+${held.fence}\\s+(1m \\d\\ds|\\d+\\.\\ds)\\s+-\\s+-\\s+-$`,
      ),
    );
  });

  it('status and inspect show the hold bounds: a minimum hold left, the hold limit, the last tick', async () => {
    // A table of its own: the locks of this test do not change the others' listing.
    const holdTable = uniqueTableName('rlock_cli_hold');
    const holdApp = await createTestApp(db, { tableName: holdTable, holder: 'worker-7' });
    try {
      const min = await holdApp.service.lock('hold:min', 5_000, { minHoldMs: 120_000 });
      await min.unlock(); // done, kept taken for two minutes
      const max = await holdApp.service.lock('hold:max', 5_000, {
        ttlMs: 60_000,
        maxHoldMs: 600_000,
      });
      const tick = await holdApp.service.lock('hold:tick', 5_000, { oncePer: '1h' });
      await tick.unlock();
      const hour = 3_600_000;
      const tickAt = (await holdApp.service.inspect('hold:tick'))!.lastTickAt!;
      expect(tickAt.getTime() % hour).toBe(0);
      const tickText = tickAt.toISOString().replace('.000Z', 'Z');

      const status = await cli('status', '--url', userUrl(db), '--table', holdTable);
      expectExit(status, 0);
      const lines = status.stdout.trimEnd().split('\n');
      expect(lines).toHaveLength(4);
      expect(lines[1]).toMatch(
        new RegExp(
          `^hold:max\\s+held\\s+worker-7\\s+${max.fence}\\s+(1m 00s|\\d+\\.\\ds)\\s+max in (10m 00s|9m \\d\\ds)\\s+-\\s+-$`,
        ),
      );
      expect(lines[2]).toMatch(
        /^hold:min\s+held\s+worker-7\s+\d+\s+(2m 00s|1m \d\ds)\s+min hold\s+-\s+released$/,
      );
      expect(lines[3]).toMatch(
        new RegExp(`^hold:tick\\s+free\\s+-\\s+\\d+\\s+-\\s+-\\s+${tickText}\\s+released$`),
      );
      // The columns line up: every cell starts where its title does.
      const at = lines[0].indexOf('LAST TICK');
      expect(lines[3].slice(at)).toMatch(new RegExp(`^${tickText}`));

      const json = await cli('status', '--json', '--url', userUrl(db), '--table', holdTable);
      const locks = JSON.parse(json.stdout) as Record<string, unknown>[];
      const state = (name: string) => holdApp.service.inspect(name);
      expect(locks[0]).toMatchObject({
        name: 'hold:max',
        holdUntil: null,
        holdLimit: (await state('hold:max'))!.holdLimit!.toISOString(),
        lastTickAt: null,
      });
      expect(locks[1]).toMatchObject({
        name: 'hold:min',
        status: 'held',
        holdUntil: (await state('hold:min'))!.holdUntil!.toISOString(),
      });
      expect(locks[2]).toMatchObject({ name: 'hold:tick', lastTickAt: tickAt.toISOString() });

      const inspect = await cli('inspect', 'hold:min', '--url', userUrl(db), '--table', holdTable);
      expectExit(inspect, 0);
      expect(inspect.stdout).toMatch(/^hold until:\s+\S+Z \(in (2m 00s|1m \d\ds)\)$/m);
      expect(inspect.stdout).toMatch(/^hold limit:\s+-$/m);
      expect(inspect.stdout).toMatch(/^last tick:\s+-$/m);
      await max.unlock();
    } finally {
      await holdApp.close();
    }
  });

  it('status --json prints the same locks as JSON', async () => {
    const { code, stdout, stderr } = await run('status', '--json');
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    const locks = JSON.parse(stdout);
    expect(locks.map((lock: { name: string }) => lock.name)).toEqual([
      'cli:failed',
      'cli:free',
      'cli:held',
    ]);
    expect(locks[2]).toMatchObject({ status: 'held', holder: 'worker-7', fence: held.fence });
    expect(new Date(locks[2].expiresAt).getTime()).toBe(held.expiresAt.getTime());
  });

  it('inspect shows one lock with the error its last holder stored', async () => {
    const { code, stdout, stderr } = await run('inspect', 'cli:failed');
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    expect(stdout).toMatch(/^name:\s+cli:failed$/m);
    expect(stdout).toMatch(/^status:\s+free$/m);
    expect(stdout).toMatch(/^last outcome:\s+error$/m);
    expect(stdout).toMatch(/^last error:\s+DiskFullError: disk full on \/dev\/sdb$/m);
    expect(stdout).toMatch(/^ {2}code:\s+ENOSPC$/m);
    expect(stdout).toMatch(/^ {2}device:\s+\/dev\/sdb$/m);
  });

  it('inspect of an unknown lock exits with 5', async () => {
    const { code, stdout, stderr } = await run('inspect', 'cli:nope');
    expect(code).toBe(5);
    expect(stdout).toBe('');
    expect(stderr).toContain('Unknown lock "cli:nope"');
  });

  it('release without --yes and without a terminal refuses and changes nothing', async () => {
    const { code, stderr } = await run('release', 'cli:held');
    expect(code).toBe(2);
    expect(stderr).toContain('pass --yes');
    expect((await app.service.inspect('cli:held'))?.status).toBe('held');
  });

  it('release on a terminal asks first: "n" keeps the lock, "y" releases it', async () => {
    const tty = await app.service.lock('cli:tty', 5_000, { ttlMs: 120_000 });
    const no = await cliOnTerminal('n', [
      'release',
      'cli:tty',
      '--url',
      userUrl(db),
      '--table',
      table,
    ]);
    expect(no.stdout).toContain(
      `Force-release the lock "cli:tty" held by worker-7 (fence ${tty.fence})?`,
    );
    expectExit(no, 1);
    expect((await app.service.inspect('cli:tty'))?.status).toBe('held');
    const yes = await cliOnTerminal('y', [
      'release',
      'cli:tty',
      '--url',
      userUrl(db),
      '--table',
      table,
    ]);
    expectExit(yes, 0);
    expect(yes.stdout).toContain('Released the lock "cli:tty"');
    await expect(tty.extend()).rejects.toBeInstanceOf(LockLostError);
  });

  it('release frees only the holding it showed: a lock that changed hands meanwhile stays held', async () => {
    const shown = await app.service.lock('cli:race', 5_000, { ttlMs: 120_000 });
    let taken: RemoteLock | undefined;
    // While the operator reads the question, the holder shown releases and another takes it.
    const run = await cliOnTerminal(
      'y',
      ['release', 'cli:race', '--url', userUrl(db), '--table', table],
      async () => {
        await shown.unlock();
        taken = await app.service.lock('cli:race', 5_000, { ttlMs: 120_000 });
      },
    );
    expect(run.stdout).toContain(`held by worker-7 (fence ${shown.fence})?`);
    expectExit(run, 1);
    expect(run.stdout).toContain(
      `Not released: the lock "cli:race" changed hands since it was shown (held by worker-7, fence ${shown.fence}); it is now held by worker-7 (fence ${taken!.fence}).`,
    );
    await taken!.extend();
    expect(await app.service.inspect('cli:race')).toMatchObject({
      status: 'held',
      fence: taken!.fence,
      lastOutcome: 'released',
    });

    // Released meanwhile and still free: nothing to do.
    const freed = await cliOnTerminal(
      'y',
      ['release', 'cli:race', '--url', userUrl(db), '--table', table],
      () => taken!.unlock(),
    );
    expectExit(freed, 0);
    expect(freed.stdout).toContain('The lock "cli:race" is not held: nothing to release.');
    expect((await app.service.inspect('cli:race'))?.lastOutcome).toBe('released');
  });

  it('release --yes force-releases: the holder loses the lock, the next one is told why', async () => {
    const { code, stdout, stderr } = await run(
      'release',
      'cli:held',
      '--yes',
      '--reason',
      'stuck since Monday',
    );
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    expect(stdout).toContain(
      `Released the lock "cli:held" (was held by worker-7, fence ${held.fence})`,
    );
    await expect(held.extend()).rejects.toBeInstanceOf(LockLostError);
    const next = await app.service.lock('cli:held', 5_000);
    expect(next.lastError).toBeInstanceOf(ForceReleasedError);
    expect(next.lastError?.message).toBe('stuck since Monday');
    await next.unlock();
    const again = await run('release', 'cli:held', '--yes');
    expectExit(again, 0);
    expect(again.stdout).toContain('is not held: nothing to release');
    expect((await run('release', 'cli:nope', '--yes')).code).toBe(5);
  });

  it('purge deletes the rows of locks unused for the given age', async () => {
    const none = await run('purge', '--older-than', '7d');
    expectExit(none, 0);
    expect(none.stdout.trim()).toBe('Deleted 0 rows of locks unused for 7d.');
    const all = await run('purge', '--older-than', '0s');
    expectExit(all, 0);
    expect(all.stdout.trim()).toBe('Deleted 5 rows of locks unused for 0s.');
    const empty = await run('status');
    expect(empty.stdout.trim()).toBe(`No locks in the table "${table}".`);
  });

  it('exits with 4 when the lock table is missing', async () => {
    const { code, stderr } = await cli('status', '--url', userUrl(db), '--table', 'no_such_rlock');
    expect(code).toBe(4);
    expect(stderr).toContain('The lock table "no_such_rlock" does not exist');
  });

  if (db.kind === 'mariadb') {
    it('accepts a mariadb:// URL', async () => {
      const url = db.url.replace(/^mysql:/, 'mariadb:');
      const { code, stdout, stderr } = await cli('status', '--url', url, '--table', table);
      expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
      expect(stdout).toContain('No locks in the table');
    });
  }

  if (db.kind === 'sqlite') {
    it('accepts a plain file path', async () => {
      const { code, stdout, stderr } = await cli('status', '--url', db.url, '--table', table);
      expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
      expect(stdout).toContain('No locks in the table');
    });
  }
});

describe('nestjs-rlock command line usage errors', () => {
  it('prints help with --help and exits with 0', async () => {
    const { code, stdout, stderr } = await cli('--help');
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    expect(stdout).toContain('Usage: nestjs-rlock <command> --url <database url>');
  });

  it.each([
    [[], 'No command given.'],
    [['frobnicate', '--url', 'x.db'], 'Unknown command "frobnicate".'],
    [['status'], 'Missing --url'],
    [['status', '--url', 'redis://127.0.0.1:6379'], 'Unsupported database URL scheme "redis"'],
    [['status', '--url', 'postgres://'], 'Cannot read the database URL'],
    [['status', '--url', 'x.db', '--bogus'], "Unknown option '--bogus'"],
    [['inspect', '--url', 'x.db'], '"inspect" needs a lock name'],
    [['purge', '--url', 'x.db'], 'purge needs --older-than'],
    [['purge', '--url', 'x.db', '--older-than', 'soon'], '--older-than must be a number'],
    [['status', '--url', 'x.db', '--table', 'bad-name;'], 'tableName must be an SQL identifier'],
  ])('exits with 2 for %j', async (args, message) => {
    const { code, stdout, stderr } = await cli(...args);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toContain(message);
  });

  it.each([
    ['postgres://u:secret@h:badport/db', 'postgres://u:***@h:badport/db'],
    ['mysql://root:secret@127.0.0.1:99999/test', 'mysql://root:***@127.0.0.1:99999/test'],
    ['mariadb://root:p@ss:secret@h:-1/db', 'mariadb://root:***@h:-1/db'],
  ])('never prints the password of the unreadable URL %s', async (url, shown) => {
    const { code, stdout, stderr } = await cli('status', '--url', url);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toContain(`Cannot read the database URL "${shown}"`);
    expect(stderr).not.toContain('secret');
  });

  it('never prints the password of a URL given where it is not expected', async () => {
    const { code, stderr } = await cli('status', 'postgres://u:secret@h/db', '--url', 'x.db');
    expect(code).toBe(2);
    expect(stderr).toContain('Unexpected argument(s): postgres://u:***@h/db');
    expect(stderr).not.toContain('secret');
  });

  it('exits with 3 when the database is unreachable or the SQLite file does not exist', async () => {
    const refused = await cli('status', '--url', 'postgres://postgres:secret@127.0.0.1:1/test');
    expectExit(refused, 3);
    expect(refused.stderr).toContain(
      'Cannot connect to the database at postgres://postgres:***@127.0.0.1:1/test',
    );
    expect(refused.stderr).not.toContain('secret');
    const missing = await cli('status', '--url', 'sqlite:/nonexistent/dir/locks.sqlite');
    expectExit(missing, 3);
    expect(missing.stderr).toContain('No SQLite database at /nonexistent/dir/locks.sqlite');
  });
});
