// The database server's own count of work: PostgreSQL transactions of this database
// (pg_stat_database xact_commit + xact_rollback), MariaDB/MySQL `Questions` (server-wide).

/** Opens a sampler for a database; `sample()` resolves the current counter (or null). */
async function serverSampler(db) {
  if (db.kind === 'postgres') {
    const { Client } = require('pg');
    const client = new Client({ connectionString: db.url });
    await client.connect();
    return {
      scope: 'transactions of this database (pg_stat_database)',
      async sample() {
        // Statistics are flushed by each backend about once a second; clear this session's snapshot.
        await client.query('SELECT pg_stat_clear_snapshot()');
        const { rows } = await client.query(
          'SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = current_database()',
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
      scope: 'server-wide Questions (includes other clients of the server)',
      async sample() {
        const [rows] = await connection.query("SHOW GLOBAL STATUS LIKE 'Questions'");
        return Number(rows[0].Value);
      },
      close: () => connection.end(),
    };
  }
  return { scope: null, sample: async () => null, close: async () => undefined };
}

/** Samples at the start and end of the window [from, until] (hrtime ns); resolves per-second rate. */
function sampleWindow(sampler, from, until) {
  const at = (ns) =>
    new Promise((r) => setTimeout(r, Math.max(0, Number(ns - process.hrtime.bigint()) / 1e6)));
  return (async () => {
    await at(from);
    const a = await sampler.sample();
    await at(until);
    // PostgreSQL backends report their counts up to a second late.
    if (sampler.scope?.startsWith('transactions')) await new Promise((r) => setTimeout(r, 1100));
    const b = await sampler.sample();
    return a === null ? null : (b - a) / (Number(until - from) / 1e9);
  })();
}

module.exports = { serverSampler, sampleWindow };
