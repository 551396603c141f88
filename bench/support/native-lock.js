// Baselines sent straight through the same drivers: the database's own lock
// (pg_advisory_lock / GET_LOCK / SQLite's write transaction) and the simplest lock table.

/**
 * A dedicated connection holding the native lock, with the critical section's one durable
 * write (`bump`: the counter row of the name + 1, autocommit) on the same connection.
 * `xact`: PostgreSQL through a transaction-pooling proxy, where a session lock is not
 * possible: BEGIN, pg_advisory_xact_lock, the write, COMMIT (the write commits with it).
 */
async function nativeSession(kind, dataSource, { xact = false } = {}) {
  if (kind === 'postgres') {
    const client = await dataSource.driver.master.connect();
    const q = (text, values) => client.query(text, values);
    if (xact) {
      return {
        lock: async (id) => {
          await q('BEGIN');
          await q('SELECT pg_advisory_xact_lock($1)', [id]);
        },
        unlock: () => q('COMMIT'),
        bump: (table, row) => q(`UPDATE ${table} SET value = value + 1 WHERE id = $1`, [row]),
        close: () => client.release(),
      };
    }
    return {
      lock: (id) => q('SELECT pg_advisory_lock($1)', [id]),
      unlock: (id) => q('SELECT pg_advisory_unlock($1)', [id]),
      bump: (table, row) => q(`UPDATE ${table} SET value = value + 1 WHERE id = $1`, [row]),
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
    // GET_LOCK names are server-wide (all databases): keep the bench's apart.
    return {
      lock: (id) => q('SELECT GET_LOCK(?, 600) AS ok', [`rlock_bench:${id}`]),
      unlock: (id) => q('SELECT RELEASE_LOCK(?) AS ok', [`rlock_bench:${id}`]),
      bump: (table, row) => q(`UPDATE ${table} SET value = value + 1 WHERE id = ?`, [row]),
      close: () => connection.release(),
    };
  }
  // SQLite's own lock: a write transaction (BEGIN IMMEDIATE waits in busy_timeout); the
  // write commits with it.
  const Database = dataSource.driver.databaseConnection.constructor;
  const db = new Database(dataSource.options.database, { timeout: 600_000 });
  const begin = db.prepare('BEGIN IMMEDIATE');
  const commit = db.prepare('COMMIT');
  let update;
  return {
    lock: async () => begin.run(),
    unlock: async () => commit.run(),
    bump: async (table, row) => {
      update ??= db.prepare(`UPDATE ${table} SET value = value + 1 WHERE id = ?`);
      update.run(row);
    },
    close: () => db.close(),
  };
}

/**
 * The critical section's durable write for the library's holders, through the same driver
 * as the native baseline's (not through TypeORM's query runner, whose own cost would
 * weigh on the library's side only): the pool's connections, autocommit.
 */
function bumper(kind, dataSource, table) {
  if (kind === 'postgres') {
    const pool = dataSource.driver.master;
    const text = `UPDATE ${table} SET value = value + 1 WHERE id = $1`;
    // Unnamed, as the native session's: a named statement cannot pass a transaction pooler.
    return (row) => pool.query(text, [row]);
  }
  if (kind === 'mariadb') {
    const pool = dataSource.driver.pool;
    const sql = `UPDATE ${table} SET value = value + 1 WHERE id = ?`;
    return (row) =>
      new Promise((resolve, reject) =>
        pool.query(sql, [row], (e, r) => (e ? reject(e) : resolve(r))),
      );
  }
  const update = dataSource.driver.databaseConnection.prepare(
    `UPDATE ${table} SET value = value + 1 WHERE id = ?`,
  );
  return async (row) => update.run(row);
}

const PG_NOW = `(extract(epoch FROM clock_timestamp()) * 1000000)::bigint`;
const MY_NOW = `TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))`;
const LITE_NOW = `(CAST(ROUND(unixepoch('subsec') * 1000) AS INTEGER) * 1000)`;

/**
 * The simplest lock table that does the job, on the library's own table: one conditional
 * upsert that takes a free or expired lock (creating the row on first use) and returns the
 * fence and the previous outcome, one UPDATE that frees it with an outcome; both on one
 * dedicated connection of the same driver. `acquire(id, token)` and `release(id, token)`
 * resolve whether they took / freed the row.
 */
async function simplestLockTable(kind, dataSource, table) {
  if (kind === 'postgres') {
    const client = await dataSource.driver.master.connect();
    const acquire = {
      name: `bench-simplest-acquire:${table}`,
      text: `INSERT INTO "${table}" AS t (id, name, token, holder, fence, acquired_at, expires_at)
        VALUES ($1, $1, $2, $3, 1, ${PG_NOW}, ${PG_NOW} + $4::bigint * 1000)
        ON CONFLICT (id) DO UPDATE SET token = EXCLUDED.token, holder = EXCLUDED.holder,
          fence = t.fence + 1, acquired_at = EXCLUDED.acquired_at, expires_at = EXCLUDED.expires_at
        WHERE t.token IS NULL OR t.expires_at <= EXCLUDED.acquired_at
        RETURNING t.fence, t.last_outcome, t.last_error`,
    };
    const release = {
      name: `bench-simplest-release:${table}`,
      text: `UPDATE "${table}" SET token = NULL, last_outcome = 'released', last_error = NULL,
        released_at = ${PG_NOW} WHERE id = $1 AND token = $2`,
    };
    return {
      acquire: async (id, token) =>
        (await client.query({ ...acquire, values: [id, token, 'simplest', 30000] })).rowCount === 1,
      release: async (id, token) =>
        (await client.query({ ...release, values: [id, token] })).rowCount === 1,
      close: () => client.release(),
    };
  }
  if (kind === 'mariadb') {
    const connection = await new Promise((resolve, reject) =>
      dataSource.driver.pool.getConnection((e, c) => (e ? reject(e) : resolve(c))),
    );
    const q = (sql, values) =>
      new Promise((resolve, reject) =>
        connection.query(sql, values, (e, r) => (e ? reject(e) : resolve(r))),
      );
    // ON DUPLICATE KEY UPDATE assigns left to right: `token` first, the rest test whether it is ours.
    const acquire = `INSERT INTO \`${table}\` (id, name, token, holder, fence, acquired_at, expires_at)
        VALUES (?, ?, ?, ?, 1, ${MY_NOW}, ${MY_NOW} + ? * 1000)
        ON DUPLICATE KEY UPDATE
          token = IF(token IS NULL OR expires_at <= VALUES(acquired_at), VALUES(token), token),
          fence = IF(token <=> VALUES(token), fence + 1, fence),
          holder = IF(token <=> VALUES(token), VALUES(holder), holder),
          acquired_at = IF(token <=> VALUES(token), VALUES(acquired_at), acquired_at),
          expires_at = IF(token <=> VALUES(token), VALUES(expires_at), expires_at)
        RETURNING token, fence, last_outcome, last_error`;
    const release = `UPDATE \`${table}\` SET token = NULL, last_outcome = 'released', last_error = NULL,
        released_at = ${MY_NOW} WHERE id = ? AND token = ?`;
    return {
      acquire: async (id, token) =>
        (await q(acquire, [id, id, token, 'simplest', 30000]))[0]?.token === token,
      release: async (id, token) => (await q(release, [id, token])).affectedRows === 1,
      close: () => connection.release(),
    };
  }
  const Database = dataSource.driver.databaseConnection.constructor;
  const db = new Database(dataSource.options.database, { timeout: 5000 });
  const acquire = db.prepare(
    `INSERT INTO "${table}" AS t (id, name, token, holder, fence, acquired_at, expires_at)
       VALUES (@id, @id, @token, @holder, 1, ${LITE_NOW}, ${LITE_NOW} + @ttl * 1000)
       ON CONFLICT (id) DO UPDATE SET token = excluded.token, holder = excluded.holder,
         fence = t.fence + 1, acquired_at = excluded.acquired_at, expires_at = excluded.expires_at
       WHERE t.token IS NULL OR t.expires_at <= excluded.acquired_at
       RETURNING fence, last_outcome, last_error`,
  );
  const release = db.prepare(
    `UPDATE "${table}" SET token = NULL, last_outcome = 'released', last_error = NULL,
       released_at = ${LITE_NOW} WHERE id = ? AND token = ?`,
  );
  return {
    acquire: async (id, token) =>
      acquire.get({ id, token, holder: 'simplest', ttl: 30000 }) !== undefined,
    release: async (id, token) => release.run(id, token).changes === 1,
    close: () => db.close(),
  };
}

module.exports = { bumper, nativeSession, simplestLockTable };
