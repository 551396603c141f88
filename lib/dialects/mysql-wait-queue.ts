import type { QueueSession } from './wait-queue';

/** The parts of a `mysql2` connection a wait-queue session uses. */
export interface MysqlQueueConnection {
  query(
    sql: string,
    values: unknown[],
    callback: (error: Error | null, result: unknown) => void,
  ): void;
  on(event: 'error' | 'end', listener: (error?: Error) => void): unknown;
  destroy(): void;
}

/** `GET_LOCK` waits in seconds; this long means "until granted" (the session ends sooner). */
const WAIT_SECONDS = 31_536_000;

/** A wait-queue session on MySQL/MariaDB, which can also run a statement (a release). */
export interface MysqlQueueSession extends QueueSession {
  query(
    sql: string,
    values: unknown[],
    callback: (error: Error | null, result: unknown) => void,
  ): void;
}

/**
 * A wait-queue session on MySQL/MariaDB: a connection of its own holding `GET_LOCK` named
 * locks. Those names are server-wide: `namespace` (from the schema and table) keeps each
 * lock table's apart; a name stays under the 64 characters `GET_LOCK` accepts.
 */
export function mysqlQueueSession(
  connection: MysqlQueueConnection,
  namespace: string,
  onFailure: () => void,
): MysqlQueueSession {
  let ended = false;
  const fail = () => {
    if (!ended) onFailure();
  };
  connection.on('error', fail);
  connection.on('end', fail);
  const run = (sql: string, values: unknown[]) =>
    new Promise<unknown>((resolve, reject) =>
      connection.query(sql, values, (error, result) => (error ? reject(error) : resolve(result))),
    );
  const lockName = (key: string) => queueLockName(namespace, key);
  return {
    query: (sql, values, callback) => connection.query(sql, values, callback),
    lock: async (key) => {
      const [row] = (await run('SELECT GET_LOCK(?, ?) AS granted', [
        lockName(key),
        WAIT_SECONDS,
      ])) as { granted: unknown }[];
      if (Number(row?.granted) !== 1) throw new Error('GET_LOCK was not granted');
    },
    unlock: async (key) => {
      await run('DO RELEASE_LOCK(?)', [lockName(key)]);
    },
    destroy: () => {
      if (ended) return;
      ended = true;
      connection.destroy();
    },
  };
}

/** The `GET_LOCK` name of the line of one lock (also read by the acquire statement). */
export function queueLockName(namespace: string, key: string): string {
  return `rlock:${namespace}:${key.slice(0, 40)}`;
}
