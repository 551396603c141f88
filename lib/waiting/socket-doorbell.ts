import { unlink } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Doorbell } from './doorbell.interface';

/** Longest token a ring carries (an owner token is 32 hex digits). */
const MAX_RING_BYTES = 64;

/**
 * SQLite (one machine, no server): a local socket per waiting process (an abstract Unix
 * socket on Linux, a socket file elsewhere, a named pipe on Windows). After a release has
 * handed it a lock and committed, the releasing process connects and writes the place's
 * token. Whatever fails here, the waiting process's polling still finds the grant.
 */
export class SocketDoorbell implements Doorbell {
  address: string | null = null;
  private server: Server | undefined;
  private opened = false;
  private closed = false;

  get ringing(): boolean {
    return this.server?.listening === true;
  }

  open(owner: string, ring: (token?: string) => void, connected: () => void): void {
    if (this.opened || this.closed) return;
    this.opened = true;
    const path = socketPath(owner);
    const server = createServer((socket) => {
      let data = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => {
        data += chunk;
        if (data.length > MAX_RING_BYTES) socket.destroy();
      });
      socket.on('end', () => ring(data.length > 0 ? data : undefined));
      socket.on('error', () => undefined);
    });
    server.on('error', () => {
      // No doorbell (a path in use, no permission): waiters poll.
      this.address = null;
      server.close();
    });
    server.unref();
    server.listen(path, () => {
      if (this.closed) return server.close();
      this.address = path;
      connected();
    });
    this.server = server;
  }

  ringAt(address: string, token: string): void {
    ringSocket(address, token);
  }

  async close(): Promise<void> {
    this.closed = true;
    const server = this.server;
    this.server = undefined;
    this.address = null;
    if (server?.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** Rings the doorbell at `address` with `token` (fire and forget: polling is the fallback). */
export function ringSocket(address: string, token: string): void {
  const socket = connect(address);
  socket.on('error', () => undefined);
  socket.end(token);
  socket.unref();
}

function socketPath(owner: string): string {
  const name = `nestjs-rlock-${process.pid}-${owner}`;
  if (process.platform === 'win32') return `\\\\.\\pipe\\${name}`;
  // Linux: an abstract socket leaves no file behind, even when the process is killed.
  if (process.platform === 'linux') return `\0${name}`;
  const path = join(tmpdir(), `${name}.sock`);
  unlink(path, () => undefined);
  return path;
}
