import { checkHistory, type HistoryEvent } from './support/history';

// R2: the offline checker that every contention test runs on its recorded history must
// itself catch each kind of anomaly; a checker that passes everything proves nothing.
const MS = 1e6;

function grant(pid: number, fence: number, atMs: number, dbAt: number, ttl = 1000): HistoryEvent {
  return { e: 'grant', pid, hr: atMs * MS, name: 'n', fence, dbAt, exp: dbAt + ttl };
}
function release(
  pid: number,
  fence: number,
  atMs: number,
  ok = true,
  error?: string,
): HistoryEvent {
  return {
    e: 'release',
    pid,
    hr: (atMs + 1) * MS,
    name: 'n',
    fence,
    ok,
    error,
    sectionEnd: atMs * MS,
  };
}
function lost(pid: number, fence: number, atMs: number): HistoryEvent {
  return { e: 'lost', pid, hr: atMs * MS, name: 'n', fence };
}

describe('R2 history checker', () => {
  it('accepts a clean history: release then grant, and a takeover after the lease ran out', () => {
    const report = checkHistory([
      grant(1, 10, 0, 1000),
      release(1, 10, 5),
      grant(2, 11, 6, 1006),
      // pid 2 is paused: its lease ends at 2006, pid 3 takes over at 2010.
      grant(3, 12, 3000, 2010),
      lost(2, 11, 3100),
      release(2, 11, 3101, false, 'LockLostError'),
      release(3, 12, 3200),
    ]);
    expect(report.anomalies).toEqual([]);
    expect(report.overlaps).toBe(0);
    expect(report.overlapsAfterExpiry).toBe(1);
  });

  it('accepts a holder killed right after its release committed (the next grant saw a clean release)', () => {
    const report = checkHistory([
      grant(1, 10, 0, 1000),
      { ...grant(2, 11, 5, 1005), last: null },
      release(2, 11, 9),
    ]);
    expect(report.anomalies).toEqual([]);
  });

  it('counts a release undone by a database crash instead of reporting it', () => {
    const events = [
      grant(1, 10, 0, 1000),
      release(1, 10, 1),
      { ...grant(2, 11, 1500, 2000), last: 'LeaseExpiredError' },
    ];
    const report = checkHistory(events, { crashes: [100 * MS] });
    expect(report.anomalies).toEqual([]);
    expect(report.releasesLostInCrash).toBe(1);
  });

  it('tolerates a grant dated slightly before its predecessor only within the clock slack', () => {
    const events = [
      grant(1, 10, 0, 1000),
      release(1, 10, 1),
      grant(2, 11, 5, 997),
      release(2, 11, 9),
    ];
    expect(checkHistory(events, { clockSlackMs: 1_000 }).anomalies).toEqual([]);
    expect(checkHistory(events, { clockSlackMs: 1_000 }).grantTimeInversions).toBe(1);
    expect(checkHistory(events).anomalies.map((a) => a.kind)).toContain(
      'fence order differs from grant order',
    );
  });

  it.each([
    [
      'released lock reported as expired',
      [
        grant(1, 10, 0, 1000),
        release(1, 10, 1),
        { ...grant(2, 11, 5, 2005), last: 'LeaseExpiredError' },
      ],
    ],
    [
      'granted while the previous lease was live',
      [grant(1, 10, 0, 1000), grant(2, 11, 5, 1005), release(1, 10, 8), release(2, 11, 9)],
    ],
    [
      'overlapping sections',
      [grant(1, 10, 0, 1000), grant(2, 11, 5, 1005), release(1, 10, 8), release(2, 11, 9)],
    ],
    [
      'fence reused',
      [grant(1, 10, 0, 1000), release(1, 10, 1), grant(2, 10, 5, 1005), release(2, 10, 9)],
    ],
    [
      'fence order differs from grant order',
      [grant(1, 10, 0, 1000), release(1, 10, 1), grant(2, 11, 5, 900), release(2, 11, 9)],
    ],
    ['release by a non-owner', [grant(1, 10, 0, 1000), release(2, 10, 1)]],
    [
      'grant time unknown',
      [grant(1, 10, 0, 1000), release(1, 10, 1), { ...grant(2, 11, 5, 0), dbAt: null }],
    ],
    [
      'released after being told it was lost',
      [grant(1, 10, 0, 1000), lost(1, 10, 1), release(1, 10, 2)],
    ],
  ])('reports %s', (kind, events) => {
    const report = checkHistory(events);
    expect(report.anomalies.map((a) => a.kind)).toContain(kind);
  });
});
