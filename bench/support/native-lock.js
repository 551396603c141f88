// Baselines sent straight through the same drivers: the database's own lock
// (pg_advisory_lock / GET_LOCK) and the two lock-table statements without the library.

/** A dedicated connection for the native lock (session-level locks need one). */
async function nativeSession(kind, dataSource) {
  if (kind === 'postgres') {
    const client = await dataSource.driver.master.connect();
    const q = (text, values) => client.query(text, values);
    return {
      lock: (id) => q('SELECT pg_advisory_lock($1)', [id]),
      unlock: (id) => q('SELECT pg_advisory_unlock($1)', [id]),
      read: (table) =>
        q(`SELECT value FROM ${table} WHERE id = 1`).then((r) => Number(r.rows[0].value)),
      write: (table, value) => q(`UPDATE ${table} SET value = $1 WHERE id = 1`, [value]),
      close: () => client.release(),
    };
  }
  if (kind === 'mariadb') {
    const connection = await new Promise((resolve, reject) =>
      dataSource.driver.pool.getConnection((e, c) => (e ? reject(e) : resolve(c))),
    );
    const q = (sql, values = []) =>
      new Promise((resolve, reject) =>
        connection.query(sql, values, (e, r) => (e ? reject(e) : resolve(r))),
      );
    return {
      lock: (id) => q('SELECT GET_LOCK(?, 600) AS ok', [String(id)]),
      unlock: (id) => q('SELECT RELEASE_LOCK(?) AS ok', [String(id)]),
      read: (table) => q(`SELECT value FROM ${table} WHERE id = 1`).then((r) => Number(r[0].value)),
      write: (table, value) => q(`UPDATE ${table} SET value = ? WHERE id = 1`, [value]),
      close: () => connection.release(),
    };
  }
  // SQLite's own lock: a write transaction (BEGIN IMMEDIATE waits in busy_timeout).
  const Database = dataSource.driver.databaseConnection.constructor;
  const db = new Database(dataSource.options.database, { timeout: 600_000 });
  const begin = db.prepare('BEGIN IMMEDIATE');
  const commit = db.prepare('COMMIT');
  let select;
  let update;
  return {
    lock: async () => begin.run(),
    unlock: async () => commit.run(),
    read: async (table) => {
      select ??= db.prepare(`SELECT value FROM ${table} WHERE id = 1`);
      return Number(select.get().value);
    },
    write: async (table, value) => {
      update ??= db.prepare(`UPDATE ${table} SET value = ? WHERE id = 1`);
      update.run(value);
    },
    close: () => db.close(),
  };
}

const PG_NOW = `(extract(epoch FROM clock_timestamp()) * 1000000)::bigint`;
const MY_NOW = `TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))`;
const LITE_NOW = `(CAST(ROUND(unixepoch('subsec') * 1000) AS INTEGER) * 1000)`;

/**
 * The two lock-table statements a minimal lock needs (a conditional update that grants,
 * an update that frees), sent raw through the same driver and connection kind as the
 * library uses. The row must exist (see `ensureRawRow`).
 */
function rawStatements(kind, dataSource, table, file) {
  if (kind === 'postgres') {
    const pool = dataSource.driver.master;
    const acquire = {
      name: `bench-raw-acquire:${table}`,
      text: `WITH c AS (SELECT ${PG_NOW} AS now)
        UPDATE "${table}" AS t SET token = $2, holder = $3, fence = t.fence + 1,
          acquired_at = c.now, expires_at = c.now + $4::bigint * 1000 FROM c
        WHERE t.id = $1 AND (t.token IS NULL OR t.expires_at <= c.now) RETURNING t.fence`,
    };
    const release = {
      name: `bench-raw-release:${table}`,
      text: `UPDATE "${table}" SET token = NULL, last_outcome = 'released', released_at = ${PG_NOW}
        WHERE id = $1 AND token = $2`,
    };
    return {
      acquire: async (id, token) =>
        (await pool.query({ ...acquire, values: [id, token, 'raw', 30000] })).rowCount === 1,
      release: async (id, token) =>
        (await pool.query({ ...release, values: [id, token] })).rowCount === 1,
      close: () => undefined,
    };
  }
  if (kind === 'mariadb') {
    const pool = dataSource.driver.pool;
    const q = (sql, values) =>
      new Promise((resolve, reject) =>
        pool.query(sql, values, (e, r) => (e ? reject(e) : resolve(r))),
      );
    const acquire = `UPDATE \`${table}\` SET token = ?, holder = ?, fence = fence + 1, acquired_at = ${MY_NOW},
        expires_at = ${MY_NOW} + ? * 1000 WHERE id = ? AND (token IS NULL OR expires_at <= ${MY_NOW})`;
    const release = `UPDATE \`${table}\` SET token = NULL, last_outcome = 'released', released_at = ${MY_NOW}
        WHERE id = ? AND token = ?`;
    return {
      acquire: async (id, token) =>
        (await q(acquire, [token, 'raw', 30000, id])).affectedRows === 1,
      release: async (id, token) => (await q(release, [id, token])).affectedRows === 1,
      close: () => undefined,
    };
  }
  const Database = dataSource.driver.databaseConnection.constructor;
  const db = new Database(file, { timeout: 5000 });
  const acquire = db.prepare(
    `UPDATE "${table}" SET token = ?, holder = ?, fence = fence + 1, acquired_at = ${LITE_NOW},
       expires_at = ${LITE_NOW} + ? * 1000 WHERE id = ? AND (token IS NULL OR expires_at <= ${LITE_NOW}) RETURNING fence`,
  );
  const release = db.prepare(
    `UPDATE "${table}" SET token = NULL, last_outcome = 'released', released_at = ${LITE_NOW} WHERE id = ? AND token = ?`,
  );
  return {
    acquire: async (id, token) => acquire.get(token, 'raw', 30000, id) !== undefined,
    release: async (id, token) => release.run(id, token).changes === 1,
    close: () => db.close(),
  };
}

/** Creates the row the raw statements work on. */
async function ensureRawRow(kind, dataSource, table, id) {
  const insert =
    kind === 'mariadb'
      ? `INSERT IGNORE INTO \`${table}\` (id, name, fence) VALUES (?, ?, 1)`
      : kind === 'postgres'
        ? `INSERT INTO "${table}" (id, name, fence) VALUES ($1, $2, 1) ON CONFLICT (id) DO NOTHING`
        : `INSERT INTO "${table}" (id, name, fence) VALUES (?, ?, 1) ON CONFLICT (id) DO NOTHING`;
  await dataSource.query(insert, [id, id]);
}

module.exports = { nativeSession, rawStatements, ensureRawRow };
