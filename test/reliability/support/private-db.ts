import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { testDatabase, type TestDatabase } from '../../support/databases';

const run = promisify(execFile);
const SCRIPT = join(__dirname, '..', '..', '..', 'scripts', 'reliability', 'private-db.sh');
const BASE_PORT = { postgres: 55432, mariadb: 53306 } as const;

/** A private database server of this test process, which it may restart at will. */
export interface PrivateDb {
  db: TestDatabase;
  /** Stops the server (fast: clean shutdown; crash: SIGKILL / immediate) and starts it again after `downSeconds`. */
  restart(mode: 'fast' | 'crash', downSeconds?: number): Promise<void>;
  stop(): Promise<void>;
}

/** Whether the binaries for private instances are installed. */
export async function canStartPrivate(kind: 'postgres' | 'mariadb'): Promise<boolean> {
  try {
    await run('bash', [
      '-c',
      kind === 'postgres'
        ? 'ls /usr/lib/postgresql/*/bin/initdb'
        : 'command -v mariadb-install-db mariadbd || test -x /usr/sbin/mariadbd',
    ]);
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts a private PostgreSQL or MariaDB from the installed binaries on its own port
 * (scripts/reliability/private-db.sh); never the machine's shared servers.
 */
export async function startPrivateDb(kind: 'postgres' | 'mariadb'): Promise<PrivateDb> {
  const dir = mkdtempSync(join(tmpdir(), `rlock-rel-${kind}-`));
  const port = String(BASE_PORT[kind] + (process.pid % 1000));
  const { stdout } = await run(SCRIPT, ['start', kind, dir, port, String(process.pid)], {
    timeout: 120_000,
  });
  const url = stdout.trim().split('\n').pop()!;
  return {
    db: testDatabase(kind, url),
    restart: async (mode, downSeconds = 1) => {
      await run(SCRIPT, ['restart', kind, dir, port, mode, String(downSeconds)], {
        timeout: 120_000,
      });
    },
    stop: async () => {
      await run(SCRIPT, ['stop', kind, dir, port], { timeout: 60_000 });
    },
  };
}
