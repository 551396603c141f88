// Row 1's closest baseline: the statements one library lock() + unlock() cycle sends,
// recorded at the driver entry points the dialects use and sent again raw through the
// same driver, with a fresh owner token on each replay.
const { randomUUID } = require('node:crypto');

/**
 * Records what one call of `cycle` sends: the pg pool's `query(config)`, mysql2 connections'
 * `query(sql | Query, values, cb)`, better-sqlite3 statements' `run`/`get`/`all` (the library's
 * own connection; the transaction's BEGIN IMMEDIATE and COMMIT included).
 */
async function record(kind, dataSource, cycle) {
  const calls = [];
  let target;
  let methods;
  let wrapper;
  if (kind === 'postgres') {
    target = dataSource.driver.master;
    methods = ['query'];
    wrapper = (original) =>
      function recorded(config, ...rest) {
        const c = typeof config === 'string' ? { text: config, values: rest[0] } : config;
        calls.push({ name: c.name, sql: c.text, args: [...(c.values ?? [])] });
        return original.call(this, config, ...rest);
      };
  } else if (kind === 'mariadb') {
    // At the connection: a release is a transaction on one pooled connection, and the
    // pool's own query() ends here too (with a Query object).
    const { dirname, join } = require('node:path');
    const Base = require(join(dirname(require.resolve('mysql2')), 'lib', 'base', 'connection.js'));
    target = (Base.BaseConnection ?? Base).prototype;
    methods = ['query'];
    wrapper = (original) =>
      function recorded(sql, values, ...rest) {
        const text = typeof sql === 'string' ? sql : sql.sql;
        const args = typeof sql === 'string' ? values : sql.values;
        calls.push({ sql: text, args: Array.isArray(args) ? [...args] : [] });
        return original.call(this, sql, values, ...rest);
      };
  } else {
    target = Object.getPrototypeOf(dataSource.driver.databaseConnection.prepare('SELECT 1'));
    methods = ['run', 'get', 'all'];
    wrapper = (original, method) =>
      function recorded(...args) {
        const copy = (a) => (a !== null && typeof a === 'object' ? { ...a } : a);
        calls.push({ statement: this, method, sql: this.source, args: args.map(copy) });
        return original.apply(this, args);
      };
  }
  const originals = methods.map((m) => [m, target[m]]);
  for (const [m, original] of originals) target[m] = wrapper(original, m);
  try {
    await cycle();
  } finally {
    for (const [m, original] of originals) target[m] = original;
  }
  return calls;
}

/** The parameter slots of a recorded call: [index] or [index, named parameter]. */
function slots(call) {
  const out = [];
  call.args.forEach((a, i) => {
    if (a !== null && typeof a === 'object' && !Array.isArray(a) && !Buffer.isBuffer(a)) {
      for (const k of Object.keys(a)) out.push([i, k]);
    } else out.push([i]);
  });
  return out;
}

const read = (call, [i, k]) => (k === undefined ? call.args[i] : call.args[i][k]);

/** A short name of a statement, for the notes. */
function label(call) {
  if (call.name) return call.name.split(':').pop();
  const sql = call.sql.replace(/\s+/g, ' ').trim();
  const head = /^BEGIN \w+/i.exec(sql)?.[0] ?? sql.split(' ')[0];
  return head + (/ RETURNING /i.test(sql) ? '…RETURNING' : '');
}

/**
 * Records two library cycles (`cycle`), finds the owner token (the one parameter value that
 * differs between them), and returns `step()`, which sends the same statements raw with a
 * fresh token and throws unless the acquire granted and the release freed the row.
 * `sent()` is the worker's count of all statements sent (query-counter), to check that the
 * recorded entry points saw everything the cycle sent.
 */
async function ownStatements(kind, dataSource, cycle, sent) {
  const before = sent();
  const a = await record(kind, dataSource, cycle);
  const total = sent() - before;
  const b = await record(kind, dataSource, cycle);
  const same =
    a.length === b.length &&
    a.every((c, i) => c.sql === b[i].sql && slots(c).length === slots(b[i]).length);
  if (!same) throw new Error('two library cycles sent different statements');
  let token;
  const templates = b.map((call, i) => {
    const tokenSlots = slots(call).filter((s) => read(a[i], s) !== read(call, s));
    for (const s of tokenSlots) {
      if (token !== undefined && read(call, s) !== token) {
        throw new Error(`more than one parameter changes between cycles (${label(call)})`);
      }
      token = read(call, s);
    }
    return { ...call, tokenSlots };
  });
  if (token === undefined) throw new Error('no owner token found in the statements of a cycle');
  const send = sender(kind, dataSource);
  const step = async () => {
    const fresh = randomUUID().replace(/-/g, '');
    for (const t of templates) {
      const args = t.args.map((x) => (x !== null && typeof x === 'object' ? { ...x } : x));
      for (const [i, k] of t.tokenSlots) {
        if (k === undefined) args[i] = fresh;
        else args[i][k] = fresh;
      }
      const result = await send(t, args);
      if (t.tokenSlots.length > 0 && !took(kind, t, result, fresh)) {
        throw new Error(`replayed ${label(t)} did not grant/free the row`);
      }
    }
  };
  return {
    step,
    statements: templates.map(label),
    // Statements the cycle sent beyond the recorded entry points (another connection).
    unrecorded: total - a.length,
  };
}

function sender(kind, dataSource) {
  if (kind === 'postgres') {
    const pool = dataSource.driver.master;
    return (t, values) =>
      pool.query(t.name ? { name: t.name, text: t.sql, values } : { text: t.sql, values });
  }
  if (kind === 'mariadb') {
    // Replayed in order on one connection (the release's transaction needs one).
    let connection;
    return async (t, values) => {
      connection ??= await new Promise((resolve, reject) =>
        dataSource.driver.pool.getConnection((e, c) => (e ? reject(e) : resolve(c))),
      );
      return new Promise((resolve, reject) =>
        connection.query(t.sql, values, (e, r) => (e ? reject(e) : resolve(r))),
      );
    };
  }
  return async (t, args) => t.statement[t.method](...args);
}

/** Whether a replayed statement that carries the token granted (acquire) or freed (release) the row. */
function took(kind, t, result, token) {
  if (kind === 'postgres') return result.rowCount === 1 && result.rows[0]?.acquired !== false;
  if (kind === 'mariadb') {
    return Array.isArray(result)
      ? result.length === 1 && result[0].token === token
      : result.affectedRows === 1;
  }
  if (t.method === 'get') return result !== undefined;
  if (t.method === 'all') return result.length === 1;
  return result.changes === 1;
}

module.exports = { ownStatements };
