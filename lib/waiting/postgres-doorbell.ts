import type { Doorbell } from './doorbell.interface';
import { DOORBELL_RECONNECT_MAX_MS, DOORBELL_RECONNECT_MIN_MS } from './waiting.constants';

/** The parts of a `pg` client the doorbell uses. */
export interface PgListenClient {
  connect(): Promise<unknown>;
  query(text: string): Promise<unknown>;
  end(): Promise<void>;
  on(
    event: 'notification',
    listener: (message: { channel: string; payload?: string }) => void,
  ): unknown;
  on(event: 'error' | 'end', listener: (error?: Error) => void): unknown;
  removeAllListeners(): unknown;
}

/** How long the doorbell waits to hear its own test notification before giving up on rings. */
const PROBE_TIMEOUT_MS = 1_000;
const PROBE = 'probe';

/**
 * PostgreSQL: one connection per process LISTENs on the process's own channel
 * (`<table prefix><owner>`); a release that hands this process a lock notifies that
 * channel with the place's token, in the same statement (delivered when it commits).
 * On its first connection it sends itself a test notification: behind a transaction-pooling
 * proxy (PgBouncer) LISTEN succeeds but nothing is delivered, and then the doorbell gives
 * up for good so that waiters poll.
 */
export class PostgresDoorbell implements Doorbell {
  readonly address = null;
  private client: PgListenClient | undefined;
  private timer: NodeJS.Timeout | undefined;
  private retryMs = DOORBELL_RECONNECT_MIN_MS;
  private opened = false;
  private closed = false;
  private connected = false;
  private verified = false;
  private channel = '';
  private ring: (token?: string) => void = () => undefined;
  private onConnected: () => void = () => undefined;
  private probeHeard: (() => void) | undefined;

  constructor(
    private readonly createClient: () => PgListenClient,
    /** Notifies `channel` with `payload` through another connection. */
    private readonly notify: (channel: string, payload: string) => Promise<void>,
    /** Prefix of the channels of this lock table (the owner completes it). */
    private readonly channelPrefix: string,
  ) {}

  get ringing(): boolean {
    return this.connected;
  }

  open(owner: string, ring: (token?: string) => void, connected: () => void): void {
    if (this.opened || this.closed) return;
    this.opened = true;
    this.channel = `${this.channelPrefix}${owner}`;
    this.ring = ring;
    this.onConnected = connected;
    void this.connect();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.connected = false;
    clearTimeout(this.timer);
    const client = this.client;
    this.client = undefined;
    if (client) {
      client.removeAllListeners();
      client.on('error', () => undefined);
      await client.end().catch(() => undefined);
    }
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    const client = this.createClient();
    this.client = client;
    client.on('notification', (message) => {
      if (message.channel !== this.channel) return;
      if (message.payload === PROBE) this.probeHeard?.();
      else this.ring(message.payload);
    });
    client.on('error', () => this.dropped(client));
    client.on('end', () => this.dropped(client));
    try {
      await client.connect();
      await client.query(`LISTEN "${this.channel}"`);
      if (!this.verified) {
        if (!(await this.hearsItself())) {
          await this.close();
          return;
        }
        this.verified = true;
      }
    } catch {
      this.dropped(client);
      return;
    }
    if (this.client !== client) return;
    this.connected = true;
    this.retryMs = DOORBELL_RECONNECT_MIN_MS;
    // Releases while it was not listening were not heard.
    this.onConnected();
  }

  /** Whether a notification sent through another connection reaches this one. */
  private async hearsItself(): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const heard = new Promise<boolean>((resolve) => {
      this.probeHeard = () => resolve(true);
      timer = setTimeout(() => resolve(false), PROBE_TIMEOUT_MS);
      timer.unref();
    });
    await this.notify(this.channel, PROBE);
    const result = await heard;
    clearTimeout(timer);
    this.probeHeard = undefined;
    return result;
  }

  private dropped(client: PgListenClient): void {
    if (this.client !== client) return;
    this.client = undefined;
    this.connected = false;
    client.removeAllListeners();
    client.on('error', () => undefined);
    void client.end().catch(() => undefined);
    if (this.closed) return;
    const delay = this.retryMs * (0.5 + Math.random() / 2);
    this.retryMs = Math.min(this.retryMs * 2, DOORBELL_RECONNECT_MAX_MS);
    this.timer = setTimeout(() => void this.connect(), delay);
    this.timer.unref();
  }
}
