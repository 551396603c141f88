/** One event recorded by a child process (see test/reliability/workers/common.js). */
export interface HistoryEvent {
  /** grant, release (ok or not), lost (signal aborted), write (section's work), write-error, lock-error. */
  e: 'grant' | 'release' | 'lost' | 'write' | 'write-error' | 'lock-error';
  pid: number;
  /** process.hrtime.bigint() in ns when recorded: one monotonic clock for all processes. */
  hr: number;
  name: string;
  fence?: number;
  /**
   * Database time of the grant (the row's `acquired_at`, read while held), ms; null when it
   * could not be read (reported as an anomaly). Not `expiresAt − ttl`: a hand-off grants a
   * lease shorter than the ttl until the new holder renews.
   */
  dbAt?: number | null;
  /** Lease end as last known to the holder (database clock), ms. */
  exp?: number;
  /** release: whether unlock() succeeded. */
  ok?: boolean;
  /** release: hr just before unlock() was called (the end of the locked section). */
  sectionEnd?: number;
  /** write: whether the section's write was accepted. */
  accepted?: boolean;
  error?: string;
  [key: string]: unknown;
}

/** A violation of the lock's contract found in a history. */
export interface Anomaly {
  kind: string;
  detail: string;
  events: HistoryEvent[];
}

/** What `checkHistory()` found. */
export interface HistoryReport {
  events: number;
  grants: number;
  releases: number;
  lost: number;
  /** Sections that overlapped in real time while the earlier lease was still live: never allowed. */
  overlaps: number;
  /** Sections that overlapped after the earlier lease had run out (paused holder): the fence's job. */
  overlapsAfterExpiry: number;
  /** Grants dated (database clock) before the grant of the previous fence, within the slack. */
  grantTimeInversions: number;
  /** The largest such inversion, ms. */
  maxGrantTimeInversionMs: number;
  /** Acknowledged releases that a database crash undid (the next holder found the lease expired). */
  releasesLostInCrash: number;
  anomalies: Anomaly[];
}

/** Options of {@link checkHistory}. */
export interface HistoryOptions {
  /**
   * How much earlier than the previous grant a grant may be dated before it counts as an
   * anomaly. 1 ms (Date rounding) where the grant reads the clock when it happens; more
   * where the dialect's clock is fixed at statement start (MariaDB: see {@link clockSlackMs}).
   */
  clockSlackMs?: number;
  /**
   * When database server crashes began (hr, ns). A release acknowledged before a crash
   * whose lock the next holder then finds expired was lost by the crash (an asynchronous
   * commit): counted, not an anomaly.
   */
  crashes?: number[];
}

/**
 * The clock slack of a database kind: MariaDB's UTC_TIMESTAMP(6) is fixed at statement
 * start, so an attempt that waited for the row is dated before its wait.
 */
export function clockSlackMs(kind: string): number {
  return kind === 'mariadb' ? 1_000 : DB_MS_TOLERANCE;
}

/** Tolerance for comparing database instants that went through millisecond Dates. */
const DB_MS_TOLERANCE = 1;

/**
 * Checks a recorded history offline (R2): per lock name, in fence order, every grant
 * came after the previous holder released (its section had ended) or after its lease
 * ran out (database clock); fences are unique and follow database grant time; releases
 * come only from the process the grant went to; no process releases a lock it was told
 * it had lost; sections overlap only after a lease ran out.
 */
export function checkHistory(events: HistoryEvent[], options: HistoryOptions = {}): HistoryReport {
  const slack = options.clockSlackMs ?? DB_MS_TOLERANCE;
  const anomalies: Anomaly[] = [];
  const report: HistoryReport = {
    events: events.length,
    grants: 0,
    releases: 0,
    lost: 0,
    overlaps: 0,
    overlapsAfterExpiry: 0,
    grantTimeInversions: 0,
    maxGrantTimeInversionMs: 0,
    releasesLostInCrash: 0,
    anomalies,
  };
  const byName = new Map<string, HistoryEvent[]>();
  for (const event of events) {
    if (!byName.has(event.name)) byName.set(event.name, []);
    byName.get(event.name)!.push(event);
  }
  for (const [name, list] of byName) {
    const grants = list.filter((e) => e.e === 'grant').sort((a, b) => a.fence! - b.fence!);
    const grantOf = new Map<number, HistoryEvent>();
    const key = (e: HistoryEvent) => `${e.pid}:${e.fence}`;
    const releases = new Map<string, HistoryEvent>();
    const lost = new Map<string, HistoryEvent>();
    const lastHr = new Map<string, number>();
    report.grants += grants.length;
    for (const g of grants) {
      if (g.dbAt === null) {
        anomalies.push({
          kind: 'grant time unknown',
          detail: `${name}: the database time of fence ${g.fence} could not be read while it was held`,
          events: [g],
        });
      }
      const previous = grantOf.get(g.fence!);
      if (previous) {
        anomalies.push({
          kind: 'fence reused',
          detail: `${name}: fence ${g.fence} granted twice`,
          events: [previous, g],
        });
      }
      grantOf.set(g.fence!, g);
    }
    for (const e of list) {
      lastHr.set(key(e), Math.max(lastHr.get(key(e)) ?? 0, e.hr));
      if (e.e === 'release') {
        report.releases++;
        releases.set(key(e), e);
        const grant = grantOf.get(e.fence!);
        if (!grant || grant.pid !== e.pid) {
          anomalies.push({
            kind: 'release by a non-owner',
            detail: `${name}: process ${e.pid} released fence ${e.fence}, granted to ${grant?.pid ?? 'nobody'}`,
            events: grant ? [grant, e] : [e],
          });
        }
      }
      if (e.e === 'lost') {
        report.lost++;
        lost.set(key(e), e);
      }
    }
    for (const [k, release] of releases) {
      const lostEvent = lost.get(k);
      if (release.ok && lostEvent && lostEvent.hr < release.sectionEnd!) {
        anomalies.push({
          kind: 'released after being told it was lost',
          detail: `${name}: fence ${release.fence} released successfully after its signal aborted`,
          events: [lostEvent, release],
        });
      }
    }
    for (let i = 1; i < grants.length; i++) {
      const a = grants[i - 1];
      const b = grants[i];
      // An unknown grant time (reported above) orders nothing and proves no expiry.
      const dated = typeof a.dbAt === 'number' && typeof b.dbAt === 'number';
      if (dated && b.dbAt! < a.dbAt! - DB_MS_TOLERANCE) {
        report.grantTimeInversions++;
        report.maxGrantTimeInversionMs = Math.max(
          report.maxGrantTimeInversionMs,
          a.dbAt! - b.dbAt!,
        );
      }
      if (dated && b.dbAt! < a.dbAt! - slack) {
        anomalies.push({
          kind: 'fence order differs from grant order',
          detail: `${name}: fence ${b.fence} granted at ${b.dbAt} before fence ${a.fence} at ${a.dbAt} (database clock)`,
          events: [a, b],
        });
      }
      const release = releases.get(key(a));
      const lostEvent = lost.get(key(a));
      const aExp = Math.max(a.exp ?? 0, lostEvent?.exp ?? 0, release?.exp ?? 0);
      const expiredFirst = typeof b.dbAt === 'number' && b.dbAt >= aExp - DB_MS_TOLERANCE;
      const sectionEnd = release?.sectionEnd ?? lastHr.get(key(a)) ?? a.hr;
      const endedFirst = sectionEnd <= b.hr;
      // The next holder's lastError tells how the previous holding ended in the database:
      // a process killed just after its release committed leaves no release event.
      const consecutive = b.fence === a.fence! + 1;
      const nextSawRelease =
        consecutive &&
        b.last !== undefined &&
        b.last !== 'LeaseExpiredError' &&
        b.last !== 'ForceReleasedError';
      const crashedBetween =
        release !== undefined && (options.crashes ?? []).some((at) => at > release.hr && at < b.hr);
      if (consecutive && b.last === 'LeaseExpiredError' && release?.ok && crashedBetween) {
        report.releasesLostInCrash++;
      } else if (consecutive && b.last === 'LeaseExpiredError' && release?.ok) {
        anomalies.push({
          kind: 'released lock reported as expired',
          detail: `${name}: fence ${a.fence} was released, yet fence ${b.fence} was told its lease expired`,
          events: [a, release, b],
        });
      }
      // A release that failed with a database error may still have committed.
      const releaseMayHaveCommitted =
        nextSawRelease ||
        (release !== undefined && (release.ok || release.error !== 'LockLostError'));
      if (!expiredFirst && !(releaseMayHaveCommitted && endedFirst)) {
        anomalies.push({
          kind: 'granted while the previous lease was live',
          detail:
            `${name}: fence ${b.fence} granted at ${b.dbAt} but fence ${a.fence} (lease to ${aExp}) ` +
            `was ${release ? (release.ok ? 'released only after that' : `not released (${release.error})`) : 'never released'}`,
          events: [a, ...(release ? [release] : []), ...(lostEvent ? [lostEvent] : []), b],
        });
      }
      if (!endedFirst) {
        if (expiredFirst && !release?.ok) report.overlapsAfterExpiry++;
        else {
          report.overlaps++;
          anomalies.push({
            kind: 'overlapping sections',
            detail: `${name}: fence ${b.fence} granted to ${b.pid} while ${a.pid} was still in the section of fence ${a.fence}`,
            events: [a, ...(release ? [release] : []), b],
          });
        }
      }
    }
  }
  return report;
}

/** A readable dump of the anomalies, for a failing test's message. */
export function describeAnomalies(report: HistoryReport, max = 10): string {
  return report.anomalies
    .slice(0, max)
    .map(
      (a) =>
        `${a.kind}: ${a.detail}\n${a.events.map((e) => `    ${JSON.stringify(e)}`).join('\n')}`,
    )
    .join('\n');
}
