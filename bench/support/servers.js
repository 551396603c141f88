// Servers the bench starts and stops itself, on free ports of 127.0.0.1, in temporary
// directories: PgBouncer in transaction pooling (the shape of a large fleet), as
// scripts/ha/pgbouncer.sh sets it up; and, when the server under test has too few free
// connections for the 64-process rows, a private PostgreSQL 15 or MariaDB server.
const { execFileSync, spawn } = require('node:child_process');
const {
  chownSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} = require('node:fs');
const { createServer } = require('node:net');
const { tmpdir } = require('node:os');
const { join } = require('node:path');

const PG_BIN = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin';

/** Whether a command can be found. */
function has(command) {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** PostgreSQL and PgBouncer refuse to run as root: run them as `postgres` then. */
function asServerUser(file, args) {
  const root = process.getuid?.() === 0;
  const [cmd, argv] = root ? ['runuser', ['-u', 'postgres', '--', file, ...args]] : [file, args];
  return execFileSync(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
}

/** A directory the server's user may write. */
function serverDir(prefix, user = 'postgres') {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync('id', ['-u', user]).toString());
    const gid = Number(execFileSync('id', ['-g', user]).toString());
    chownSync(dir, uid, gid);
  }
  return dir;
}

/** A free TCP port on 127.0.0.1. */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Why the bench cannot start PgBouncer here (null: it can). */
function pgbouncerMissing() {
  if (!has('pgbouncer'))
    return 'the pgbouncer binary is not installed (scripts/ha/setup.sh installs it)';
  if (process.getuid?.() === 0 && !has('runuser')) return 'running as root without runuser';
  return null;
}

/** Why the bench cannot start a private PostgreSQL here (null: it can). */
function privatePostgresMissing() {
  if (!existsSync(join(PG_BIN, 'initdb'))) return `no PostgreSQL binaries in ${PG_BIN} (PG_BIN)`;
  if (process.getuid?.() === 0 && !has('runuser')) return 'running as root without runuser';
  return null;
}

/**
 * Starts a private PostgreSQL with `maxConnections`, default settings otherwise (fsync and
 * synchronous_commit on), and a database `db`. Resolves { url, port, stop() }.
 */
async function startPrivatePostgres({ db, maxConnections }) {
  const dir = serverDir('rlock-bench-pg-');
  const data = join(dir, 'data');
  const port = await freePort();
  asServerUser(join(PG_BIN, 'initdb'), [
    '-D',
    data,
    '-U',
    'postgres',
    '--auth=trust',
    '-E',
    'UTF8',
    '--no-sync',
  ]);
  writeFileSync(
    join(data, 'postgresql.conf'),
    `${readFileSync(join(data, 'postgresql.conf'), 'utf8')}
port = ${port}
listen_addresses = '127.0.0.1'
unix_socket_directories = '${dir}'
max_connections = ${maxConnections}
logging_collector = off
`,
  );
  asServerUser(join(PG_BIN, 'pg_ctl'), [
    '-D',
    data,
    '-l',
    join(dir, 'pg.log'),
    '-w',
    '-t',
    '60',
    'start',
  ]);
  const stop = () => {
    try {
      asServerUser(join(PG_BIN, 'pg_ctl'), ['-D', data, '-m', 'fast', '-w', 'stop']);
    } catch {
      // Already stopped.
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const { Client } = require('pg');
    const client = new Client({
      connectionString: `postgres://postgres@127.0.0.1:${port}/postgres`,
    });
    await client.connect();
    await client.query(`CREATE DATABASE ${db}`);
    await client.end();
  } catch (error) {
    stop();
    throw error;
  }
  return { url: `postgres://postgres@127.0.0.1:${port}/${db}`, port, stop };
}

/**
 * Starts PgBouncer in transaction pooling mode in front of 127.0.0.1:`targetPort`, database
 * `db`, with `poolSize` server connections (scripts/ha/pgbouncer.sh's settings otherwise).
 * Resolves { url, clients(), stop() }; `clients()` counts its client connections to `db`.
 */
async function startPgBouncer({ targetPort, db, poolSize }) {
  const dir = serverDir('rlock-bench-pgbouncer-');
  const port = await freePort();
  writeFileSync(join(dir, 'userlist.txt'), '"postgres" ""\n');
  writeFileSync(
    join(dir, 'pgbouncer.ini'),
    `[databases]
${db} = host=127.0.0.1 port=${targetPort} dbname=${db}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${port}
unix_socket_dir =
auth_type = trust
auth_file = ${join(dir, 'userlist.txt')}
admin_users = postgres
pool_mode = transaction
default_pool_size = ${poolSize}
max_client_conn = 1000
server_reset_query =
ignore_startup_parameters = extra_float_digits,options
logfile = ${join(dir, 'pgbouncer.log')}
pidfile = ${join(dir, 'pgbouncer.pid')}
`,
  );
  if (process.getuid?.() === 0) execFileSync('chown', ['-R', 'postgres:', dir]);
  asServerUser('pgbouncer', ['-d', join(dir, 'pgbouncer.ini')]);
  const pidFile = join(dir, 'pgbouncer.pid');
  const stop = async () => {
    try {
      // The daemon this bench started, by its pid; its directory goes once it has ended.
      const pid = Number(readFileSync(pidFile, 'utf8').trim());
      process.kill(pid, 'SIGTERM');
      for (let i = 0; i < 50; i++) {
        process.kill(pid, 0);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    } catch {
      // Gone.
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const { Client } = require('pg');
  const admin = () =>
    new Client({ connectionString: `postgres://postgres@127.0.0.1:${port}/pgbouncer` });
  for (let i = 0; ; i++) {
    const client = admin();
    try {
      await client.connect();
      await client.end();
      break;
    } catch (error) {
      if (i >= 50) {
        await stop();
        throw error;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  return {
    url: `postgres://postgres@127.0.0.1:${port}/${db}`,
    async clients() {
      const client = admin();
      await client.connect();
      try {
        const { rows } = await client.query('SHOW CLIENTS');
        return rows.filter((r) => r.database === db).length;
      } finally {
        await client.end();
      }
    },
    stop,
  };
}

/** Why the bench cannot start a private MariaDB here (null: it can). */
function privateMariadbMissing() {
  if (!has('mariadbd') && !existsSync('/usr/sbin/mariadbd')) return 'no mariadbd binary';
  if (!has('mariadb-install-db')) return 'no mariadb-install-db';
  if (process.getuid?.() === 0 && !has('runuser')) return 'running as root without runuser';
  return null;
}

/**
 * Starts a private MariaDB with `maxConnections`, compiled-in defaults otherwise (as the
 * Debian server's: durable commits, 128 MB buffer pool), no password checks (it listens on
 * 127.0.0.1 only, for the bench's run), and a database `db`. Resolves { url, port, stop() }.
 */
async function startPrivateMariadb({ db, maxConnections }) {
  const user = process.getuid?.() === 0 ? 'mysql' : null;
  const dir = serverDir('rlock-bench-mariadb-', user ?? undefined);
  const data = join(dir, 'data');
  const port = await freePort();
  const asUser = user ? [`--user=${user}`] : [];
  execFileSync(
    'mariadb-install-db',
    [
      '--no-defaults',
      ...asUser,
      `--datadir=${data}`,
      '--skip-test-db',
      '--auth-root-authentication-method=normal',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const binary = has('mariadbd') ? 'mariadbd' : '/usr/sbin/mariadbd';
  const server = spawn(
    binary,
    [
      '--no-defaults',
      ...asUser,
      `--datadir=${data}`,
      `--port=${port}`,
      '--bind-address=127.0.0.1',
      `--socket=${join(dir, 'mysqld.sock')}`,
      `--pid-file=${join(dir, 'mysqld.pid')}`,
      `--log-error=${join(dir, 'error.log')}`,
      `--max-connections=${maxConnections}`,
      '--skip-grant-tables',
      '--skip-name-resolve',
    ],
    { stdio: 'ignore' },
  );
  const stop = async () => {
    if (server.exitCode === null && server.signalCode === null) {
      // The server this bench started, by its pid.
      await new Promise((resolve) => {
        server.once('exit', resolve);
        server.kill('SIGTERM');
        setTimeout(() => server.kill('SIGKILL'), 20_000).unref();
      });
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const mysql = require('mysql2/promise');
  for (let i = 0; ; i++) {
    try {
      const connection = await mysql.createConnection({ host: '127.0.0.1', port, user: 'root' });
      await connection.query(`CREATE DATABASE ${db}`);
      await connection.end();
      break;
    } catch (error) {
      if (i >= 150 || server.exitCode !== null) {
        await stop();
        throw error;
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
  return { url: `mysql://root@127.0.0.1:${port}/${db}`, port, stop };
}

module.exports = {
  pgbouncerMissing,
  privatePostgresMissing,
  privateMariadbMissing,
  startPrivatePostgres,
  startPrivateMariadb,
  startPgBouncer,
};
