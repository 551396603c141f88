// Turns the figures the reliability suite left in .tmp/reliability/figures into a
// summary (printed) and, with --write, into RELIABILITY.md at the repository root.
const { existsSync, readdirSync, readFileSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');

const root = join(__dirname, '..', '..');
const dir = join(root, '.tmp', 'reliability', 'figures');

/** What each test does and the goal it is held to (../shared/RELIABILITY.md). */
const TESTS = {
  R1: [
    'Mutual exclusion under contention',
    'processes × acquisitions of one name with a read-then-write counter in the section, plus a second name in parallel',
    'overlaps 0; lost increments 0; fences unique and increasing in grant order; names independent',
  ],
  R1b: [
    'Grant time after a row-lock wait',
    'another transaction holds the free lock row for 400 ms while lock() waits for it',
    'the grant is dated when it happens (PostgreSQL); the lease is never longer than ttl after the grant (all)',
  ],
  R2: [
    'History check',
    'every contention test records grant/release/lost events (fence, database time, process, monotonic time) and checks them offline; the checker itself is tested on synthetic bad histories',
    'anomalies 0 over all R-runs',
  ],
  R3: [
    'Paused holder (SIGSTOP past lease)',
    'holder A (ttl 2 s) claims the fence-checking store and is stopped for 3 × ttl; B takes over and writes; A resumes and writes',
    'stale writes accepted 0/N; unlock/extend report lost 100%; signal aborted 100%',
  ],
  R4: [
    'Crashed holder (SIGKILL)',
    'holders killed with kill -9 while a waiter waits',
    'takeover ≤ ttl + one poll + 2 round trips; next holder sees LeaseExpiredError 100%',
  ],
  R5: [
    'Hand-off with state',
    'two processes pass the lock back and forth, releasing with a registered error class, with nothing, with null',
    'next holder sees exactly that outcome 100%; hand-off latency',
  ],
  R6: [
    'Acquire timeout accuracy',
    'waiters with a 200 ms timeout against a held lock, one at a time and 200 at once',
    'error within [200 ms, 200 ms + poll + RTT]; rows owned by timed-out waiters 0',
  ],
  R7: [
    'Owner-only and idempotent release',
    'double unlock; unlock/extend with a stale handle after another process took over',
    "other holder's row unchanged 100%; LockLostError, never silence",
  ],
  R8: [
    'Renewal never steals',
    "the old holder's heartbeat fires late, after another process took the lock",
    'old holder does not regain the lock 100%; its signal aborts',
  ],
  R9: [
    'Connection killed',
    "the library's own sessions killed (pg_terminate_backend / KILL CONNECTION) while holding and while waiting",
    'lock kept or loss signalled within one renewal interval; later acquires succeed 100%',
  ],
  R10: [
    'Database restart mid-load',
    'private PostgreSQL/MariaDB instance restarted (clean, then crash) under contention',
    'overlaps 0; stuck locks 0; no waiter past its timeout; time from DB ready to next grant',
  ],
  R11: [
    'Application clock skew',
    'processes with wall clocks ±1 h and jumping ±10 min every 250 ms (preloaded fake Date)',
    'overlaps 0; takeover time unchanged',
  ],
  R12: [
    'Waiter storm',
    'processes × 100 waiters on one held lock',
    'database queries/s while waiting; connections pinned by sleeping waiters 0',
  ],
  R13a: [
    'Bad input: arguments',
    'table-driven bad names, durations, ttls, options, functions, module options through the public API',
    'InvalidArgumentError 100%; no database statement; no row; nothing left locked',
  ],
  R13b: [
    'Bad input: thrown values',
    'strings, plain objects, symbols, bigints, circular, throwing getters, hostile proxies, 1 MB messages, undefined',
    'stored and handed on as a readable Error 100%; release never fails; nothing left locked',
  ],
  R13c: [
    'Bad input: odd valid names',
    '255 emoji/accented characters, case, NFC/NFD, trailing spaces, control characters, LIKE wildcards',
    'each its own lock, stored byte-exactly',
  ],
  R14: [
    'Injection',
    'names and stored errors carrying SQL and JSON tricks; hostile JSON written into rows by hand',
    'schema and other rows unchanged; prototypes never polluted',
  ],
  R15: [
    'Soak',
    'R1 load through the fence-checking store with a random fault every 10–20 s (kill, stop, session kill, restart)',
    'anomalies 0; recovery-time distribution',
  ],
  R16a: [
    'Direct hand-off: releaser killed mid-release',
    'the holder is killed 0–8 ms after sending its release, while the next process waits in line',
    'overlaps 0; fences strictly increasing; lost outcomes 0 (a release that never committed shows as LeaseExpiredError naming it)',
  ],
  R16b: [
    'Direct hand-off: next waiter killed as it is handed the lock',
    'the first process in line is killed from 2 ms before to 20 ms after the release that hands it the lock',
    'overlaps 0; the line moves on after the hand-off lease (≈ 1.5 s), never a whole lease; lost outcomes 0',
  ],
  R16c: [
    'Direct hand-off: a waiter gives up as it is handed the lock',
    'a waiter times out within ±20 ms of the release that hands it the lock',
    'the lock is passed on with the stored outcome unchanged; overlaps 0; lost outcomes 0',
  ],
};

function load() {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')));
}

function show(value) {
  if (typeof value === 'object' && value !== null) {
    if (Array.isArray(value)) return value.length === 0 ? 'none' : value.map(show).join('; ');
    return Object.entries(value)
      .map(([k, v]) => `${k}: ${show(v)}`)
      .join(', ');
  }
  return String(value);
}

function order(a, b) {
  const n = (t) => Number(t.replace(/\D/g, ''));
  return n(a) - n(b) || a.localeCompare(b);
}

const entries = load();
const tests = [...new Set(entries.map((e) => e.test))].sort(order);
const lines = [];
for (const test of tests) {
  const [title, what, goal] = TESTS[test] ?? [test, '', ''];
  lines.push(`### ${test} — ${title}`, '', `${what}. **Goal:** ${goal}.`, '');
  for (const mode of ['fast', 'full']) {
    const rows = entries.filter((e) => e.test === test && e.mode === mode);
    if (rows.length === 0) continue;
    lines.push(`${mode === 'fast' ? 'Fast suite' : 'Full suite'} — \`${rows[0].command}\``, '');
    lines.push('| database | figures |', '|---|---|');
    for (const row of rows.sort((a, b) => a.database.localeCompare(b.database))) {
      lines.push(`| ${row.database} | ${show(row.figures).replace(/\|/g, '\\|')} |`);
    }
    lines.push('');
  }
}
const anomalies = entries.reduce((sum, e) => sum + (Number(e.figures.anomalies) || 0), 0);
const summary = `R2 anomalies over all recorded runs: ${anomalies} (${entries.length} test × database × mode results).`;

if (process.argv.includes('--write')) {
  const header = readFileSync(join(__dirname, 'RELIABILITY.header.md'), 'utf8');
  // The replicated topologies (scripts/ha) keep their figures in a file of their own.
  const haFigures = join(root, 'scripts', 'ha', 'FIGURES.md');
  const ha = existsSync(haFigures) ? `\n\n${readFileSync(haFigures, 'utf8').trim()}\n` : '\n';
  writeFileSync(
    join(root, 'RELIABILITY.md'),
    `${header}\n## Figures\n\n${summary}\n\n${lines.join('\n')}${ha}`,
  );
  process.stdout.write(`RELIABILITY.md written (${entries.length} results).\n`);
} else {
  process.stdout.write(`\n${lines.join('\n')}\n${summary}\n`);
}
