// Counts the statements this process sends to the database, by wrapping the drivers'
// query entry points (pg Client, mysql2 connection, better-sqlite3 statement).

const counter = { sent: 0 };

/** Installs the counting wrappers once; returns the live counter `{ sent }`. */
function countQueries(kind) {
  if (counter.installed) return counter;
  counter.installed = true;
  if (kind === 'postgres') {
    wrap(require('pg').Client.prototype, 'query');
  } else if (kind === 'mariadb') {
    const { dirname, join } = require('node:path');
    // Not in mysql2's "exports": load the connection class by its file path.
    const Base = require(join(dirname(require.resolve('mysql2')), 'lib', 'base', 'connection.js'));
    wrap((Base.BaseConnection ?? Base).prototype, 'query');
    wrap((Base.BaseConnection ?? Base).prototype, 'execute');
  } else {
    const Database = require('better-sqlite3');
    const probe = new Database(':memory:');
    const proto = Object.getPrototypeOf(probe.prepare('SELECT 1'));
    for (const method of ['run', 'get', 'all']) wrap(proto, method);
    probe.close();
  }
  return counter;
}

function wrap(proto, method) {
  const original = proto[method];
  proto[method] = function counted(...args) {
    counter.sent++;
    return original.apply(this, args);
  };
}

module.exports = { countQueries };
