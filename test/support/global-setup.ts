import { execFileSync } from 'node:child_process';
import { DATABASE_ENV, REQUIRE_ALL_ENV } from './databases';

/**
 * Says which databases this run uses, fails in CI when one is missing or unreachable,
 * and builds dist/ for the suites that run the package in child processes.
 */
export default async function globalSetup(): Promise<void> {
  const requireAll = process.env[REQUIRE_ALL_ENV] === '1';
  const missing: string[] = [];
  for (const [kind, variable] of Object.entries(DATABASE_ENV)) {
    const url = process.env[variable];
    if (!url) {
      missing.push(`${kind} (set ${variable})`);
      continue;
    }
    await ping(kind, url);
  }
  if (missing.length > 0) {
    const line = `nestjs-rlock tests: NOT running against ${missing.join(', ')}; SQLite only for those suites.`;
    if (requireAll) throw new Error(`${REQUIRE_ALL_ENV}=1 but ${line}`);
    process.stdout.write(`\n${line}\n`);
  }
  // Several runs may share this work tree: build under a lock so none reads a half-written dist/.
  execFileSync(
    'flock',
    ['/tmp/nestjs-rlock-build.lock', 'npx', 'tsc', '-p', 'tsconfig.build.json'],
    {
      stdio: 'inherit',
    },
  );
}

async function ping(kind: string, url: string): Promise<void> {
  try {
    if (kind === 'postgres') {
      const { Client } = await import('pg');
      const client = new Client({ connectionString: url });
      await client.connect();
      await client.query('SELECT 1');
      await client.end();
    } else {
      const mysql = await import('mysql2/promise');
      const connection = await mysql.createConnection(url);
      await connection.query('SELECT 1');
      await connection.end();
    }
  } catch (error) {
    throw new Error(`The ${kind} test database at ${url} is unreachable: ${String(error)}`, {
      cause: error,
    });
  }
}
