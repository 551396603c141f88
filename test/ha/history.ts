/**
 * Offline check of a lock history recorded by ha-worker.js: every grant, release, loss
 * and fenced write, with the monotonic clock shared by all processes on Linux
 * (`process.hrtime`, µs) and the database clock at the grant.
 */

/** One line of an events file. */
export interface LockEvent {
  e:
    | 'grant'
    | 'release'
    | 'release-error'
    | 'lost'
    | 'write'
    | 'write-error'
    | 'acquire-error'
    | 'done';
  /** Lock name. */
  n?: string;
  /** Fence of the acquisition the event belongs to. */
  f?: number;
  /** Monotonic time of the event (µs); for a grant, when `lock()` returned. */
  t: number;
  /** Grant: when `lock()` was called. */
  t0?: number;
  /** Release: when `unlock()` returned. */
  t1?: number;
  /**
   * Grant: database time of the grant (ms since the epoch): the row's `acquired_at`, read
   * while held; null when the database did not answer (counted in `grantTimesUnknown`).
   */
  db?: number | null;
  /** Grant: name and message of `lastError`. */
  last?: string | null;
  lastMsg?: string | null;
  /** Release: the error message handed to the next holder; release-error: the error's name. */
  err?: string | null;
  /** Write: whether the fenced write was accepted. */
  ok?: boolean;
  cause?: string;
  why?: string;
  pid: number;
  /** Worker label. */
  w: string;
}

/** What the check found, per run. */
export interface HistoryReport {
  grants: number;
  releases: number;
  acquireErrors: number;
  releaseErrors: number;
  losses: number;
  /** A grant returned while another holder of the same name still believed it held the lock. */
  overlaps: number;
  /** Fences not strictly increasing in grant order, or handed out twice. */
  fenceAnomalies: number;
  /** Database grant times going backwards in fence order. */
  clockAnomalies: number;
  /** Grants whose database time could not be read (a failover): compared with nothing. */
  grantTimesUnknown: number;
  /** `lastError` not matching how the previous holding ended. */
  outcomeAnomalies: number;
  /** Releases of an acquisition that this process was never granted. */
  foreignReleases: number;
  /**
   * Fences granted by the database that no process recorded: an answer that never reached
   * a process (a connection cut mid-commit), or a lock handed to a place whose waiters had
   * given up, which passed it on.
   */
  ghostGrants: number;
  /** Fenced writes rejected because a newer fence had written before (a stale holder). */
  staleWrites: number;
  acceptedWrites: number;
  writeErrors: number;
  /** Sum of every anomaly counter above (overlaps included, ghosts and errors excluded). */
  anomalies: number;
  /** The first few anomalies, for the failure message. */
  details: string[];
}

interface Holding {
  grant: LockEvent;
  end: number;
  endedBy: LockEvent | null;
}

/** Checks a history; `opts.skipOutcome` names locks whose outcome chain is broken on purpose. */
export function checkHistory(
  events: LockEvent[],
  opts: { skipOutcome?: string[] } = {},
): HistoryReport {
  const r: HistoryReport = {
    grants: 0,
    releases: 0,
    acquireErrors: 0,
    releaseErrors: 0,
    losses: 0,
    overlaps: 0,
    fenceAnomalies: 0,
    clockAnomalies: 0,
    grantTimesUnknown: 0,
    outcomeAnomalies: 0,
    foreignReleases: 0,
    ghostGrants: 0,
    staleWrites: 0,
    acceptedWrites: 0,
    writeErrors: 0,
    anomalies: 0,
    details: [],
  };
  const note = (line: string) => r.details.length < 20 && r.details.push(line);
  const byProcess = new Map<number, LockEvent[]>();
  for (const event of events) {
    const list = byProcess.get(event.pid) ?? [];
    list.push(event);
    byProcess.set(event.pid, list);
  }
  const holdings: Holding[] = [];
  for (const list of byProcess.values()) {
    list.sort((a, b) => a.t - b.t);
    const open = new Map<string, Holding>();
    for (const event of list) {
      const id = `${event.n}#${event.f}`;
      switch (event.e) {
        case 'grant': {
          r.grants += 1;
          const holding = { grant: event, end: Infinity, endedBy: null };
          holdings.push(holding);
          open.set(id, holding);
          break;
        }
        case 'release':
        case 'release-error':
        case 'lost': {
          if (event.e === 'release') r.releases += 1;
          if (event.e === 'release-error') r.releaseErrors += 1;
          if (event.e === 'lost') r.losses += 1;
          const holding = open.get(id);
          if (!holding) {
            if (event.e === 'release') {
              r.foreignReleases += 1;
              note(`release of ${id} by ${event.w} without its grant`);
            }
            break;
          }
          // The holder stops believing it holds the lock at its first release call or loss;
          // how the holding ended for the next holder: an accepted release wins.
          holding.end = Math.min(holding.end, event.t);
          if (holding.endedBy?.e !== 'release') holding.endedBy = event;
          if (event.e !== 'lost') open.delete(id);
          break;
        }
        case 'write':
          if (event.ok) r.acceptedWrites += 1;
          else {
            r.staleWrites += 1;
            note(`fenced write of ${id} by ${event.w} rejected (a newer fence wrote first)`);
          }
          break;
        case 'write-error':
          r.writeErrors += 1;
          break;
        case 'acquire-error':
          r.acquireErrors += 1;
          break;
        default:
          break;
      }
    }
  }
  const names = [...new Set(holdings.map((h) => h.grant.n!))];
  for (const name of names) {
    const byTime = holdings.filter((h) => h.grant.n === name).sort((a, b) => a.grant.t - b.grant.t);
    let maxEnd = -Infinity;
    let maxEndBy: Holding | null = null;
    for (let i = 0; i < byTime.length; i++) {
      const h = byTime[i];
      if (h.grant.t < maxEnd) {
        r.overlaps += 1;
        note(
          `${name}: fence ${h.grant.f} (${h.grant.w}) granted ${maxEnd - h.grant.t} µs before fence ${maxEndBy?.grant.f} (${maxEndBy?.grant.w}) let go`,
        );
      }
      if (h.end > maxEnd) {
        maxEnd = h.end;
        maxEndBy = h;
      }
      if (i > 0 && h.grant.f! <= byTime[i - 1].grant.f!) {
        r.fenceAnomalies += 1;
        note(`${name}: fence ${h.grant.f} granted after fence ${byTime[i - 1].grant.f}`);
      }
    }
    const byFence = [...byTime].sort((a, b) => a.grant.f! - b.grant.f!);
    // The last grant (in fence order) whose database time is known.
    let dated: Holding | null = null;
    for (let i = 0; i < byFence.length; i++) {
      const h = byFence[i];
      if (typeof h.grant.db !== 'number') {
        r.grantTimesUnknown += 1;
      } else {
        if (dated && h.grant.db < dated.grant.db!) {
          r.clockAnomalies += 1;
          note(
            `${name}: database time of fence ${h.grant.f} before that of fence ${dated.grant.f}`,
          );
        }
        dated = h;
      }
      if (i === 0) continue;
      const previous = byFence[i - 1];
      if (h.grant.f! - previous.grant.f! > 1) r.ghostGrants += h.grant.f! - previous.grant.f! - 1;
      if (opts.skipOutcome?.includes(name)) continue;
      const expected = expectedOutcome(previous, h.grant.f! - previous.grant.f! > 1);
      if (
        !expected.some(
          (e) => e.last === h.grant.last && (e.msg === undefined || e.msg === h.grant.lastMsg),
        )
      ) {
        r.outcomeAnomalies += 1;
        note(
          `${name}: fence ${h.grant.f} saw ${h.grant.last}:${h.grant.lastMsg}, expected ${JSON.stringify(expected)}`,
        );
      }
    }
  }
  r.anomalies =
    r.overlaps +
    r.fenceAnomalies +
    r.clockAnomalies +
    r.outcomeAnomalies +
    r.foreignReleases +
    r.staleWrites;
  return r;
}

/** What the next holder may find in `lastError`, given how `previous` ended. */
function expectedOutcome(
  previous: Holding,
  ghostBetween: boolean,
): { last: string | null; msg?: string | null }[] {
  const expired = { last: 'LeaseExpiredError' };
  // A grant nobody recorded between them: lost (its lease ran out), or handed to a place
  // whose waiters had given up and passed on, keeping what `previous` stored.
  if (ghostBetween) return [expired, ...expectedOutcome(previous, false)];
  const end = previous.endedBy;
  if (end?.e === 'release') {
    return [
      end.err ? { last: 'RemoteError', msg: end.err } : { last: null },
      ...(end.err ? [{ last: 'Error', msg: end.err }] : []),
    ];
  }
  // Lost, a failed release (it may have committed anyway) or no release at all.
  return [expired, { last: null }, { last: 'RemoteError' }, { last: 'Error' }];
}

/** Reads the JSON lines written by the workers. */
export function parseEvents(text: string): LockEvent[] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as LockEvent);
}
