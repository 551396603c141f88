import type { RequestRecord } from '../../sample/demo/demo-scenario';
import { summarize, type ResourceRecord, type SummaryInput } from '../../sample/demo/demo-summary';

const T0 = 1_000_000;

function answer(
  resource: string,
  instance: string,
  status: RequestRecord['answer']['status'],
  body: any,
  extra: Partial<RequestRecord> = {},
): RequestRecord {
  return {
    resource,
    instance,
    role: 'stampede',
    sentAt: T0,
    answeredAt: T0 + 2_000,
    answer: { status, body },
    ...extra,
  };
}

const built = (action: string, previous: object | null = null, lockedAt = T0 + 5) => ({
  action,
  lockedAt,
  previous,
  resource: { builtBy: 'i1' },
});

function ready(id: string, builtHow: string, builds = 1, attempts = 1): ResourceRecord {
  return { id, status: 'ready', attempts, builds, builtBy: 'i1', builtHow };
}

/** A run in which every claim holds. */
function goodRun(): SummaryInput {
  return {
    database: 'SQLite',
    instances: ['i1', 'i2', 'i3'],
    elapsedMs: 10_000,
    ttlMs: 2_000,
    kill: { instance: 'i3', pid: 1, fence: 5, killedAt: T0 + 100 },
    records: [
      answer('alpha', 'i1', 200, built('created')),
      answer('alpha', 'i2', 200, built('exists', null, T0 + 1_500)),
      answer('delta', 'i1', 503, { error: 'RecoverableError' }, { fail: 'recoverable' }),
      answer('delta', 'i2', 200, built('retried', { name: 'RecoverableError' })),
      answer('echo', 'i1', 422, { error: 'FatalError', refused: false }, { fail: 'fatal' }),
      answer('echo', 'i2', 422, { error: 'FatalError', refused: true }),
      answer('foxtrot', 'i3', 'connection-lost', { message: 'socket hang up' }),
      answer(
        'foxtrot',
        'i1',
        200,
        built('repaired', { name: 'LeaseExpiredError', holder: 'i3' }, T0 + 2_100),
      ),
    ],
    resources: [
      ready('alpha', 'created'),
      ready('delta', 'retried', 1, 2),
      ready('foxtrot', 'repaired'),
    ],
    auditRuns: [
      { tick: 1_000, instance: 'i1', fence: 1, previousError: null },
      { tick: 2_000, instance: 'i2', fence: 2, previousError: null },
    ],
  };
}

const failing = (input: SummaryInput) =>
  summarize(input)
    .claims.filter((c) => !c.ok)
    .map((c) => c.id);

describe('the demo summary (what makes `npm start` exit non-zero)', () => {
  it('holds every claim for a good run', () => {
    const summary = summarize(goodRun());
    expect(summary.claims.filter((c) => !c.ok)).toEqual([]);
    expect(summary.ok).toBe(true);
    expect(summary.takeover).toMatchObject({
      by: 'i1',
      afterMs: 2_000,
      previous: 'LeaseExpiredError',
    });
  });

  it('fails exactly-once when a resource was built twice', () => {
    const run = goodRun();
    run.resources[0] = ready('alpha', 'created', 2);
    run.records.push(answer('alpha', 'i3', 200, built('created')));
    expect(failing(run)).toEqual(['exactlyOnce']);
  });

  it('fails the recoverable claim when the next holder did not retry', () => {
    const run = goodRun();
    run.records[3] = answer('delta', 'i2', 200, built('created'));
    expect(failing(run)).toContain('recoverableRetried');
  });

  it('fails the fatal claim when a later holder built the resource anyway', () => {
    const run = goodRun();
    run.records[5] = answer('echo', 'i2', 200, built('created'));
    run.resources.push(ready('echo', 'created'));
    expect(failing(run)).toEqual(expect.arrayContaining(['fatalRefused', 'exactlyOnce']));
  });

  it('fails the takeover claim when the next holder was not told LeaseExpiredError', () => {
    const run = goodRun();
    run.records[7] = answer('foxtrot', 'i1', 200, built('created'));
    run.resources[2] = ready('foxtrot', 'created');
    expect(failing(run)).toEqual(['takeoverAfterKill']);
  });

  it('fails the cron claim when a tick ran twice', () => {
    const run = goodRun();
    run.auditRuns.push({ tick: 2_000, instance: 'i1', fence: 3, previousError: null });
    expect(failing(run)).toEqual(['cronOncePerTick']);
    expect(summarize(run).audit.ticksRunTwice).toEqual([2_000]);
  });

  it('fails on unexpected answers (an acquire timeout, a 500)', () => {
    const run = goodRun();
    run.records.push(answer('alpha', 'i2', 409, { statusCode: 409 }));
    expect(failing(run)).toEqual(['noUnexpectedAnswers']);
  });
});
