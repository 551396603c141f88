/** The parts of a `pg` client the listener uses. */
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

/** First and longest pause between reconnection attempts of the listening connection. */
const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 5_000;
/** How long the listener waits to hear its own test notification before giving up on wake-ups. */
const PROBE_TIMEOUT_MS = 1_000;

/**
 * One dedicated PostgreSQL connection per dialect that LISTENs on the channels of the
 * locks this process waits for (one channel per lock, so that a release wakes only the
 * processes waiting for that lock), reconnecting with backoff whenever it drops. While it
 * is not connected, waiters fall back to polling; `listening` says which mode applies.
 * On its first connection it sends itself a test notification: behind a transaction-
 * pooling proxy (PgBouncer) LISTEN succeeds but nothing is ever delivered, and then the
 * listener gives up for good so that waiters poll at their normal pace.
 */
export class PostgresReleaseListener {
  private client: PgListenClient | undefined;
  private timer: NodeJS.Timeout | undefined;
  private retryMs = RECONNECT_MIN_MS;
  private closed = false;
  private connected = false;
  private readonly channels = new Set<string>();
  private verified = false;
  private probeHeard: ((heard: boolean) => void) | undefined;

  constructor(
    private readonly createClient: () => PgListenClient,
    /** A notification arrived on `channel`. */
    private readonly onNotification: (channel: string, payload: string) => void,
    /** `channel` is now listened to (after LISTEN, or after a reconnection): releases before it were not heard. */
    private readonly onListening: (channel: string) => void,
    /** Sends a notification on `channel` through another connection. */
    private readonly sendProbe: (channel: string) => Promise<void>,
    /** The channel of the test notification (unique to this process). */
    private readonly probeChannel: string,
  ) {}

  /** Whether the listening connection is up. */
  get listening(): boolean {
    return this.connected;
  }

  /** Connects; a failure is not thrown, it schedules a reconnection. */
  async start(): Promise<void> {
    if (this.closed) return;
    const client = this.createClient();
    this.client = client;
    client.on('notification', (message) => {
      if (message.channel === this.probeChannel) this.probeHeard?.(true);
      else if (this.channels.has(message.channel))
        this.onNotification(message.channel, message.payload ?? '');
    });
    client.on('error', () => this.dropped(client));
    client.on('end', () => this.dropped(client));
    try {
      await client.connect();
      if (!this.verified) {
        if (!(await this.hearsItself(client))) {
          await this.close();
          return;
        }
        this.verified = true;
      }
      for (const channel of this.channels) await client.query(`LISTEN "${channel}"`);
    } catch {
      this.dropped(client);
      return;
    }
    if (this.client !== client) return;
    this.connected = true;
    this.retryMs = RECONNECT_MIN_MS;
    for (const channel of this.channels) this.onListening(channel);
  }

  /** Whether a notification sent through another connection reaches this one. */
  private async hearsItself(client: PgListenClient): Promise<boolean> {
    const heard = new Promise<boolean>((resolve) => {
      this.probeHeard = resolve;
      setTimeout(() => resolve(false), PROBE_TIMEOUT_MS).unref();
    });
    await client.query(`LISTEN "${this.probeChannel}"`);
    await this.sendProbe(this.probeChannel);
    const result = await heard;
    this.probeHeard = undefined;
    await client.query(`UNLISTEN "${this.probeChannel}"`);
    return result;
  }

  /** Starts listening on `channel`; `onListening(channel)` follows once the LISTEN is active. */
  listen(channel: string): void {
    if (this.channels.has(channel)) return;
    this.channels.add(channel);
    const client = this.client;
    if (!this.connected || !client) return; // (re)connecting: start() listens to it
    client.query(`LISTEN "${channel}"`).then(
      () => {
        if (this.client === client && this.channels.has(channel)) this.onListening(channel);
      },
      () => this.dropped(client),
    );
  }

  /** Stops listening on `channel`. */
  unlisten(channel: string): void {
    if (!this.channels.delete(channel)) return;
    const client = this.client;
    if (this.connected && client) {
      client.query(`UNLISTEN "${channel}"`).catch(() => this.dropped(client));
    }
  }

  /** Stops listening and closes the connection. */
  async close(): Promise<void> {
    this.closed = true;
    this.connected = false;
    this.channels.clear();
    clearTimeout(this.timer);
    const client = this.client;
    this.client = undefined;
    if (client) {
      client.removeAllListeners();
      client.on('error', () => undefined);
      await client.end().catch(() => undefined);
    }
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
    this.retryMs = Math.min(this.retryMs * 2, RECONNECT_MAX_MS);
    this.timer = setTimeout(() => void this.start(), delay);
    this.timer.unref();
  }
}
