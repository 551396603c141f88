import type { PgListenClient } from './postgres-release-listener';
import type { QueueSession } from './wait-queue';

/** A statement for `pg`: named (prepared once per connection) or not. */
export interface PgStatement {
  name?: string;
  text: string;
  values?: unknown[];
}

/** What `pg` answers to a statement. */
export interface PgResult {
  rows: Record<string, unknown>[];
  rowCount: number | null;
}

/** A `pg` client that can run a parameterized query. */
export interface PgQueueClient extends PgListenClient {
  query(text: string, values?: unknown[]): Promise<unknown>;
  query(statement: PgStatement): Promise<PgResult>;
}

/** A wait-queue session on PostgreSQL, which can also run a statement (a release). */
export interface PgQueueSession extends QueueSession {
  query(statement: PgStatement): Promise<PgResult>;
}

const LOCK = 'SELECT pg_advisory_lock($1::int4, $2::int4)';
const UNLOCK = 'SELECT pg_advisory_unlock($1::int4, $2::int4)';

/**
 * A wait-queue session on PostgreSQL: a connection of its own holding session advisory
 * locks in the two-key space `(tableTag, keyTag(key))`, so that each lock table has its
 * own namespace.
 */
export function postgresQueueSession(
  client: PgQueueClient,
  tableTag: number,
  onFailure: () => void,
): PgQueueSession {
  let ended = false;
  const fail = () => {
    if (!ended) onFailure();
  };
  client.on('error', fail);
  client.on('end', fail);
  // pg queues queries until the connection is up; a failed connect fails them.
  client.connect().catch(fail);
  return {
    query: (statement) => client.query(statement),
    lock: async (key) => {
      await client.query(LOCK, [tableTag, keyTag(key)]);
    },
    unlock: async (key) => {
      await client.query(UNLOCK, [tableTag, keyTag(key)]);
    },
    destroy: () => {
      if (ended) return;
      ended = true;
      void client.end().catch(() => undefined);
    },
  };
}

/** A signed 32-bit tag from the first hex digits of a key (a SHA-256 hex digest). */
export function keyTag(hex: string): number {
  return Number.parseInt(hex.slice(0, 8), 16) | 0;
}
