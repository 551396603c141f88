// The database server's own view: its count of work (PostgreSQL transactions of the bench
// database from pg_stat_database, MariaDB/MySQL `Questions`, server-wide) and the
// connections open to the bench database (pg_stat_activity / the processlist).

/** Opens a probe of a database; SQLite has no server (every figure null). */
async function serverProbe(db) {
  if (db.kind === 'postgres') {
    const { Client } = require('pg');
    const client = new Client({ connectionString: db.url });
    await client.connect();
    return {
      scope: 'transactions of the bench database (pg_stat_database)',
      async count() {
        // Backends report their counts about once a second: compare samples taken in steady state.
        await client.query('SELECT pg_stat_clear_snapshot()');
        const { rows } = await client.query(
          'SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = current_database()',
        );
        return Number(rows[0].n);
      },
      async connections() {
        const { rows } = await client.query(
          'SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()',
        );
        return Number(rows[0].n);
      },
      close: () => client.end(),
    };
  }
  if (db.kind === 'mariadb') {
    const mysql = require('mysql2/promise');
    const connection = await mysql.createConnection(db.url);
    return {
      scope: 'server-wide Questions (other clients of the server included)',
      async count() {
        const [rows] = await connection.query("SHOW GLOBAL STATUS LIKE 'Questions'");
        return Number(rows[0].Value);
      },
      async connections() {
        const [rows] = await connection.query(
          'SELECT count(*) AS n FROM information_schema.processlist WHERE db = DATABASE() AND id <> CONNECTION_ID()',
        );
        return Number(rows[0].n);
      },
      close: () => connection.end(),
    };
  }
  return {
    scope: null,
    count: async () => null,
    connections: async () => null,
    close: async () => undefined,
  };
}

/** Resolves at process.hrtime.bigint() `ns`. */
function at(ns) {
  return new Promise((resolve) =>
    setTimeout(resolve, Math.max(0, Number(BigInt(ns) - process.hrtime.bigint()) / 1e6)),
  );
}

/**
 * The server's count per second over [from, until] (hrtime ns), both samples taken while
 * the workers run (their reports lag alike at both ends). Null without a server.
 */
async function countRate(probe, from, until) {
  await at(from);
  const a = await probe.count();
  const ta = process.hrtime.bigint();
  await at(until);
  const b = await probe.count();
  const tb = process.hrtime.bigint();
  return a === null ? null : (b - a) / (Number(tb - ta) / 1e9);
}

/** The connections open to the bench database at `ns`. */
async function connectionsAt(probe, ns) {
  await at(ns);
  return probe.connections();
}

module.exports = { serverProbe, countRate, connectionsAt, at };
