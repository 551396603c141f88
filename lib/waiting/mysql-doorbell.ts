import type { Doorbell } from './doorbell.interface';
import { DOORBELL_RECONNECT_MAX_MS, DOORBELL_RECONNECT_MIN_MS } from './waiting.constants';

/** The parts of a `mysql2` connection the doorbell uses. */
export interface MysqlDoorbellConnection {
  query(
    sql: string,
    values: unknown[],
    callback: (error: (Error & { errno?: number }) | null, result: unknown) => void,
  ): void;
  on(event: 'error' | 'end', listener: (error?: Error) => void): unknown;
  destroy(): void;
}

/**
 * How long one `SLEEP()` lasts; a ring interrupts it sooner. The server does not notice
 * that a client died while its statement sleeps: a killed process's session ends with its
 * current sleep, so a sleep is short.
 */
const SLEEP_SECONDS = 1;
/** `KILL QUERY` interrupted the statement. */
const ER_QUERY_INTERRUPTED = 1317;

/**
 * MySQL/MariaDB: one connection per process sleeps in `SELECT SLEEP(n)`; a release that
 * hands this process a lock interrupts it with `KILL QUERY <its connection id>` after its
 * commit (same database user; only on the same server, which the address names). A ring
 * that arrives between two sleeps is lost: the process's place renewal notices the grant.
 */
export class MysqlDoorbell implements Doorbell {
  /** `host:port:connection id` of the sleeping connection. */
  address: string | null = null;
  private connection: MysqlDoorbellConnection | undefined;
  private timer: NodeJS.Timeout | undefined;
  private retryMs = DOORBELL_RECONNECT_MIN_MS;
  private opened = false;
  private closed = false;
  private connected = false;
  private ring: (token?: string) => void = () => undefined;
  private onConnected: () => void = () => undefined;

  constructor(private readonly createConnection: () => MysqlDoorbellConnection) {}

  get ringing(): boolean {
    return this.connected;
  }

  open(_owner: string, ring: (token?: string) => void, connected: () => void): void {
    if (this.opened || this.closed) return;
    this.opened = true;
    this.ring = ring;
    this.onConnected = connected;
    void this.connect();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.connected = false;
    clearTimeout(this.timer);
    const connection = this.connection;
    this.connection = undefined;
    connection?.destroy();
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    let connection: MysqlDoorbellConnection;
    try {
      connection = this.createConnection();
    } catch {
      this.retry();
      return;
    }
    this.connection = connection;
    connection.on('error', () => this.dropped(connection));
    connection.on('end', () => this.dropped(connection));
    const run = (sql: string, values: unknown[]) =>
      new Promise<Record<string, unknown>[]>((resolve, reject) =>
        connection.query(sql, values, (error, rows) =>
          error ? reject(error) : resolve(rows as Record<string, unknown>[]),
        ),
      );
    try {
      const [me] = await run(
        'SELECT CONNECTION_ID() AS id, @@hostname AS host, @@port AS port',
        [],
      );
      if (this.connection !== connection) return;
      this.address = `${String(me.host)}:${String(me.port)}:${String(me.id)}`;
      this.connected = true;
      this.retryMs = DOORBELL_RECONNECT_MIN_MS;
      // Releases while it was not connected were not heard.
      this.onConnected();
      while (this.connection === connection) {
        try {
          await run('SELECT SLEEP(?)', [SLEEP_SECONDS]);
        } catch (error) {
          if ((error as { errno?: number }).errno !== ER_QUERY_INTERRUPTED) throw error;
          if (this.connection === connection) this.ring();
        }
      }
    } catch {
      this.dropped(connection);
    }
  }

  private dropped(connection: MysqlDoorbellConnection): void {
    if (this.connection !== connection) return;
    this.connection = undefined;
    this.connected = false;
    this.address = null;
    connection.destroy();
    this.retry();
  }

  private retry(): void {
    if (this.closed) return;
    const delay = this.retryMs * (0.5 + Math.random() / 2);
    this.retryMs = Math.min(this.retryMs * 2, DOORBELL_RECONNECT_MAX_MS);
    this.timer = setTimeout(() => void this.connect(), delay);
    this.timer.unref();
  }
}
