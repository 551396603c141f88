import type { PgListenClient } from './postgres-release-listener';

/** A `pg` client that can run a parameterized query. */
export interface PgQueueClient extends PgListenClient {
  query(text: string, values?: unknown[]): Promise<unknown>;
}

/** How many names one process queues for at once (one connection each); beyond, waiters are not queued. */
const MAX_QUEUED_NAMES = 8;
/** Idle queue connections kept for the next wait. */
const MAX_IDLE_CONNECTIONS = 2;

interface Place {
  client: PgQueueClient;
  /** `queued` while the advisory lock request waits, `first` once granted. */
  state: 'queued' | 'first';
}

/**
 * Orders the processes that wait for one lock, so that a release wakes one of them
 * instead of all. A waiting process asks, on a connection of its own, for a session
 * advisory lock derived from the lock's key: PostgreSQL queues those requests in arrival
 * order, and only the process that holds it (the first in line) is woken by release
 * notifications. It gives the advisory lock up as soon as it takes the lock (or stops
 * waiting), letting the next process move up. The advisory lock only orders attempts:
 * every grant is still decided by the lock table's conditional statement, and any
 * failure here simply leaves that process unqueued (woken by every release).
 */
export class PostgresWaitQueue {
  private readonly places = new Map<string, Place>();
  private readonly idle: PgQueueClient[] = [];
  private closed = false;

  constructor(
    private readonly createClient: () => PgQueueClient,
    /** Namespace of this lock table in the two-key advisory lock space. */
    private readonly tableTag: number,
    /** Called when this process becomes first in line for `key` (or its place in line was lost). */
    private readonly onFirst: (key: string) => void,
  ) {}

  /** Whether this process is queued for `key` behind another process (release notifications are not for it). */
  isBehind(key: string): boolean {
    return this.places.get(key)?.state === 'queued';
  }

  /** Queues this process for `key`; false when it cannot (at the limit, closed, no connection). */
  enter(key: string): boolean {
    if (this.places.has(key)) return true;
    if (this.closed || this.places.size >= MAX_QUEUED_NAMES) return false;
    const client = this.idle.pop() ?? this.connect();
    if (client === undefined) return false;
    const place: Place = { client, state: 'queued' };
    this.places.set(key, place);
    client
      .query('SELECT pg_advisory_lock($1::int4, $2::int4)', [this.tableTag, keyTag(key)])
      .then(() => {
        if (this.places.get(key) !== place) return this.unlock(client, key);
        place.state = 'first';
        this.onFirst(key);
      })
      .catch(() => {
        this.discard(client);
        if (this.places.get(key) !== place) return;
        this.places.delete(key);
        this.onFirst(key);
      });
    return true;
  }

  /** Leaves the line for `key`, letting the next process move up. */
  leave(key: string): void {
    const place = this.places.get(key);
    if (!place) return;
    this.places.delete(key);
    // A request still waiting cannot be withdrawn: closing its connection withdraws it.
    if (place.state === 'queued') this.discard(place.client);
    else void this.unlock(place.client, key);
  }

  /** Closes every queue connection (their advisory locks end with them). */
  async close(): Promise<void> {
    this.closed = true;
    const clients = [...this.idle, ...[...this.places.values()].map((p) => p.client)];
    this.idle.length = 0;
    this.places.clear();
    await Promise.all(clients.map((client) => client.end().catch(() => undefined)));
  }

  private connect(): PgQueueClient | undefined {
    try {
      const client = this.createClient();
      client.on('error', () => this.discard(client));
      // pg queues queries until the connection is up; a failed connect fails them.
      client.connect().catch(() => this.discard(client));
      return client;
    } catch {
      return undefined;
    }
  }

  private async unlock(client: PgQueueClient, key: string): Promise<void> {
    try {
      await client.query('SELECT pg_advisory_unlock($1::int4, $2::int4)', [
        this.tableTag,
        keyTag(key),
      ]);
    } catch {
      this.discard(client);
      return;
    }
    if (!this.closed && this.idle.length < MAX_IDLE_CONNECTIONS) this.idle.push(client);
    else void client.end().catch(() => undefined);
  }

  private discard(client: PgQueueClient): void {
    const index = this.idle.indexOf(client);
    if (index !== -1) this.idle.splice(index, 1);
    client.removeAllListeners();
    client.on('error', () => undefined);
    void client.end().catch(() => undefined);
  }
}

/** A signed 32-bit tag from the first hex digits of a key (a SHA-256 hex digest). */
export function keyTag(hex: string): number {
  return Number.parseInt(hex.slice(0, 8), 16) | 0;
}
