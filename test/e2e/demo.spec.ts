import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Claim, DemoSummary } from '../../sample/demo/demo-summary';
import { testDatabases } from '../support/databases';

const ROOT = join(__dirname, '..', '..');
const DEMO_MAIN = join(ROOT, 'sample', 'dist', 'sample', 'demo', 'main.js');

/** Runs the compiled demo (as `npm start` does, with shorter settings) and reads its JSON summary. */
function runDemo(
  databaseUrl: string,
): Promise<{ code: number | null; output: string; summary: DemoSummary }> {
  const summaryFile = join(mkdtempSync(join(tmpdir(), 'rlock-demo-test-')), 'summary.json');
  const args = [
    DEMO_MAIN,
    '--db',
    databaseUrl,
    '--instances',
    '4',
    '--duration',
    '5',
    '--work-ms',
    '800',
    '--ttl-ms',
    '2000',
    '--no-progress',
    '--summary',
    summaryFile,
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => (output += String(chunk)));
    child.stderr.on('data', (chunk) => (output += String(chunk)));
    child.on('error', reject);
    child.on('exit', (code) => {
      try {
        resolve({ code, output, summary: JSON.parse(readFileSync(summaryFile, 'utf8')) });
      } catch (error) {
        reject(new Error(`The demo wrote no summary (exit ${code}):\n${output}`, { cause: error }));
      }
    });
  });
}

beforeAll(() => {
  // `npm start` compiles the sample first; so does this suite (under a lock: suites share the tree).
  execFileSync(
    'flock',
    ['/tmp/nestjs-rlock-sample-build.lock', 'npx', 'tsc', '-p', 'sample/tsconfig.json'],
    {
      cwd: ROOT,
      stdio: 'inherit',
    },
  );
}, 60_000);

describe.each(testDatabases())('the multi-instance demo (npm start) on $label', (db) => {
  let result: Awaited<ReturnType<typeof runDemo>>;
  const claim = (id: Claim['id']) => result.summary.claims.find((c) => c.id === id);

  beforeAll(async () => {
    result = await runDemo(db.url);
  }, 90_000);

  it('exits 0 with every claim of its summary holding', () => {
    if (result.code !== 0) throw new Error(`demo exited with ${result.code}:\n${result.output}`);
    expect(result.summary.ok).toBe(true);
    expect(result.summary.claims.filter((c) => !c.ok)).toEqual([]);
    expect(result.output).toContain('Every claim holds.');
  });

  it('creates every resource exactly once, and never the one that failed fatally', () => {
    expect(claim('exactlyOnce')?.ok).toBe(true);
    const ready = result.summary.resources.filter((r) => r.status === 'ready');
    expect(ready.map((r) => r.id)).toEqual(
      expect.arrayContaining(['alpha', 'bravo', 'charlie', 'delta', 'foxtrot']),
    );
    for (const resource of ready) expect(resource.builds).toBe(1);
    expect(result.summary.resources.find((r) => r.id === 'echo')?.builds ?? 0).toBe(0);
  });

  it('makes concurrent requests wait, then skip the work', () => {
    expect(claim('waited')?.ok).toBe(true);
    expect(result.summary.requests.waited).toBeGreaterThan(0);
    expect(result.summary.requests.byAnswer.exists).toBeGreaterThan(0);
  });

  it('hands a recoverable error to the next holder, which retries', () => {
    expect(claim('recoverableRetried')?.ok).toBe(true);
    expect(result.summary.handovers).toContainEqual(
      expect.objectContaining({ resource: 'delta', previous: 'RecoverableError', did: 'retried' }),
    );
    expect(result.summary.resources.find((r) => r.id === 'delta')).toMatchObject({
      builtHow: 'retried',
      attempts: 2,
      builds: 1,
    });
  });

  it('hands a fatal error to the next holders, which refuse', () => {
    expect(claim('fatalRefused')?.ok).toBe(true);
    const refusals = result.summary.handovers.filter((h) => h.resource === 'echo');
    expect(refusals.length).toBeGreaterThan(0);
    for (const refusal of refusals) {
      expect(refusal).toMatchObject({ previous: 'FatalError', did: 'refused' });
    }
  });

  it('reports the takeover after SIGKILL as an expired previous holder, and repairs', () => {
    expect(claim('takeoverAfterKill')?.ok).toBe(true);
    const takeover = result.summary.takeover!;
    expect(takeover.previous).toBe('LeaseExpiredError');
    expect(takeover.previousHolder).toBe(takeover.killed);
    expect(takeover.by).not.toBe(takeover.killed);
    expect(takeover.afterMs).toBeGreaterThanOrEqual(0);
    expect(result.summary.handovers).toContainEqual(
      expect.objectContaining({
        resource: 'foxtrot',
        previous: 'LeaseExpiredError',
        did: 'repaired',
      }),
    );
  });

  it('runs the cluster-wide cron job on one instance per tick', () => {
    expect(claim('cronOncePerTick')?.ok).toBe(true);
    expect(result.summary.audit.runs).toBeGreaterThan(0);
    expect(result.summary.audit.ticksRunTwice).toEqual([]);
  });

  it('answers nothing unexpected (no 409, no 500)', () => {
    expect(claim('noUnexpectedAnswers')?.ok).toBe(true);
  });
});
