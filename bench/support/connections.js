// The TCP connections this process has open to the database server (Linux /proc): every
// connection counts, the TypeORM pool's and any the library opens beside it.
const { readdirSync, readFileSync, readlinkSync } = require('node:fs');

/** The server port of a database URL (null: SQLite, no server). */
function serverPort(kind, url) {
  if (kind === 'sqlite') return null;
  const port = new URL(url).port;
  return Number(port || (kind === 'postgres' ? 5432 : 3306));
}

/** How many established TCP connections this process has to `port` (null when unknown). */
function connectionsTo(port) {
  if (port === null) return null;
  try {
    const inodes = new Set();
    for (const fd of readdirSync('/proc/self/fd')) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
        if (m) inodes.add(m[1]);
      } catch {
        // Closed meanwhile.
      }
    }
    let count = 0;
    for (const file of ['/proc/self/net/tcp', '/proc/self/net/tcp6']) {
      let text;
      try {
        text = readFileSync(file, 'utf8');
      } catch {
        continue;
      }
      for (const line of text.split('\n').slice(1)) {
        const f = line.trim().split(/\s+/);
        if (f.length < 10) continue;
        const remotePort = parseInt(f[2].split(':')[1], 16);
        // State 01: established.
        if (remotePort === port && f[3] === '01' && inodes.has(f[9])) count++;
      }
    }
    return count;
  } catch {
    return null;
  }
}

module.exports = { serverPort, connectionsTo };
