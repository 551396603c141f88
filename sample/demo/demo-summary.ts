import {
  BACKGROUND_RESOURCES,
  CRASH_RESOURCE,
  FATAL_RESOURCE,
  RECOVERABLE_RESOURCE,
  STAMPEDE_RESOURCES,
  WAIT_THRESHOLD_MS,
  waitedMs,
  type AuditRunRecord,
  type KillRecord,
  type RequestRecord,
} from './demo-scenario';

/** A resource as `GET /resources` lists it. */
export interface ResourceRecord {
  id: string;
  status: string;
  attempts: number;
  builds: number;
  builtBy: string | null;
  builtHow: string | null;
}

/** One checked statement of the summary. */
export interface Claim {
  id:
    | 'exactlyOnce'
    | 'waited'
    | 'recoverableRetried'
    | 'fatalRefused'
    | 'takeoverAfterKill'
    | 'cronOncePerTick'
    | 'noUnexpectedAnswers';
  ok: boolean;
  text: string;
}

/** The machine-readable summary (`--summary FILE`). */
export interface DemoSummary {
  ok: boolean;
  database: string;
  instances: number;
  elapsedMs: number;
  claims: Claim[];
  requests: {
    total: number;
    waited: number;
    longestWaitMs: number;
    byAnswer: Record<string, number>;
  };
  resources: ResourceRecord[];
  handovers: { instance: string; resource: string; previous: string; did: string }[];
  takeover: {
    killed: string;
    lock: string;
    by: string | null;
    afterMs: number | null;
    previous: string | null;
    previousHolder: string | null;
  } | null;
  audit: { runs: number; perInstance: Record<string, number>; ticksRunTwice: number[] };
}

/** What the summary is computed from. */
export interface SummaryInput {
  database: string;
  instances: string[];
  elapsedMs: number;
  ttlMs: number;
  records: RequestRecord[];
  resources: ResourceRecord[];
  auditRuns: AuditRunRecord[];
  kill: KillRecord | undefined;
}

/** Checks every claim of the demo against what the requests answered and what the database holds. */
export function summarize(input: SummaryInput): DemoSummary {
  const { records, resources } = input;
  const ok200 = (r: RequestRecord) => r.answer.status === 200;
  const did = (r: RequestRecord) => ok200(r) && r.answer.body.action !== 'exists';
  const forResource = (id: string) => records.filter((r) => r.resource === id);
  const resource = (id: string) => resources.find((r) => r.id === id);
  const claims: Claim[] = [];

  // 1. Exactly once.
  const built = [
    ...STAMPEDE_RESOURCES,
    RECOVERABLE_RESOURCE,
    CRASH_RESOURCE,
    ...BACKGROUND_RESOURCES,
  ].filter((id) => forResource(id).length > 0);
  const wrong = built.filter((id) => {
    const row = resource(id);
    return row?.status !== 'ready' || row.builds !== 1 || forResource(id).filter(did).length !== 1;
  });
  const fatalRow = resource(FATAL_RESOURCE);
  const fatalBuilt = fatalRow?.status === 'ready' || (fatalRow?.builds ?? 0) > 0;
  claims.push({
    id: 'exactlyOnce',
    ok: wrong.length === 0 && !fatalBuilt && built.length > 0,
    text:
      wrong.length === 0
        ? `each resource was built exactly once across ${input.instances.length} instances: ` +
          built.map((id) => `${id} by ${resource(id)?.builtBy}`).join(', ') +
          ` (${records.length} requests); ${FATAL_RESOURCE} was never built`
        : `built more or less than once: ${wrong
            .map(
              (id) =>
                `${id} (builds ${resource(id)?.builds ?? 0}, ${forResource(id).filter(did).length} answers did the work)`,
            )
            .join(', ')}`,
  });

  // 2. Waiting.
  const waits = records.map(waitedMs).filter((ms) => ms >= WAIT_THRESHOLD_MS);
  const waitedThenSkipped = records.filter(
    (r) => ok200(r) && r.answer.body.action === 'exists' && waitedMs(r) >= WAIT_THRESHOLD_MS,
  );
  const longestWaitMs = waits.length === 0 ? 0 : Math.max(...waits);
  claims.push({
    id: 'waited',
    ok: waitedThenSkipped.length > 0,
    text:
      `${waits.length} requests waited for another instance's lock (longest ${(longestWaitMs / 1000).toFixed(1)} s); ` +
      `${waitedThenSkipped.length} of them then found the resource built and skipped the work`,
  });

  // 3. Recoverable error retried by the next holder.
  const recoverable = forResource(RECOVERABLE_RESOURCE);
  const failed = recoverable.filter(
    (r) =>
      r.fail === 'recoverable' &&
      r.answer.status === 503 &&
      r.answer.body.error === 'RecoverableError',
  );
  const retried = recoverable.filter(
    (r) =>
      ok200(r) &&
      r.answer.body.action === 'retried' &&
      r.answer.body.previous?.name === 'RecoverableError',
  );
  claims.push({
    id: 'recoverableRetried',
    ok:
      failed.length === 1 &&
      retried.length === 1 &&
      resource(RECOVERABLE_RESOURCE)?.builtHow === 'retried',
    text:
      failed.length === 1 && retried.length === 1
        ? `recoverable error handed over: ${failed[0].instance} failed building ${RECOVERABLE_RESOURCE} (RecoverableError, 503); ` +
          `${retried[0].instance} read it from the lock and retried → built`
        : `recoverable error NOT handed over as expected (${failed.length} failures, ${retried.length} retries)`,
  });

  // 4. Fatal error refused by the next holders.
  const fatal = forResource(FATAL_RESOURCE);
  const fatalFirst = fatal.filter(
    (r) => r.answer.status === 422 && r.answer.body.refused === false,
  );
  const refused = fatal.filter((r) => r.answer.status === 422 && r.answer.body.refused === true);
  claims.push({
    id: 'fatalRefused',
    ok:
      fatalFirst.length === 1 &&
      refused.length > 0 &&
      refused.length === fatal.length - 1 &&
      !fatalBuilt,
    text:
      fatalFirst.length === 1 && refused.length > 0
        ? `fatal error handed over: ${fatalFirst[0].instance} failed building ${FATAL_RESOURCE} (FatalError, 422); ` +
          `${refused.length} later holders (${refused.map((r) => r.instance).join(', ')}) read it from the lock and refused (422)`
        : `fatal error NOT handed over as expected (${fatalFirst.length} failures, ${refused.length} refusals of ${fatal.length})`,
  });

  // 5. Takeover after SIGKILL.
  const kill = input.kill;
  const repairs = forResource(CRASH_RESOURCE).filter(
    (r) => ok200(r) && r.answer.body.action === 'repaired',
  );
  const repair = repairs.length === 1 ? repairs[0] : undefined;
  const previous = repair?.answer.body.previous ?? null;
  const afterMs = repair && kill ? repair.answer.body.lockedAt - kill.killedAt : null;
  const takeover = kill
    ? {
        killed: kill.instance,
        lock: `resource:${CRASH_RESOURCE}`,
        by: repair?.instance ?? null,
        afterMs,
        previous: previous?.name ?? null,
        previousHolder: previous?.holder ?? null,
      }
    : null;
  claims.push({
    id: 'takeoverAfterKill',
    ok:
      takeover !== null &&
      repairs.length === 1 &&
      takeover.previous === 'LeaseExpiredError' &&
      takeover.previousHolder === kill!.instance &&
      afterMs !== null &&
      afterMs >= 0,
    text:
      takeover && repair
        ? `takeover after SIGKILL: ${takeover.killed} was killed holding ${takeover.lock}; ${takeover.by} took it over ` +
          `${((afterMs ?? 0) / 1000).toFixed(1)} s later (lease ${input.ttlMs / 1000} s), was told ${takeover.previous} ` +
          `(holder ${takeover.previousHolder}) and repaired the half-built resource`
        : `no takeover after the kill was reported (${repairs.length} repairs)`,
  });

  // 6. Cron singleton.
  const perInstance: Record<string, number> = {};
  const perTick = new Map<number, number>();
  for (const run of input.auditRuns) {
    perInstance[run.instance] = (perInstance[run.instance] ?? 0) + 1;
    perTick.set(run.tick, (perTick.get(run.tick) ?? 0) + 1);
  }
  const ticksRunTwice = [...perTick].filter(([, n]) => n > 1).map(([tick]) => tick);
  claims.push({
    id: 'cronOncePerTick',
    ok: input.auditRuns.length > 0 && ticksRunTwice.length === 0,
    text:
      `audit job (@Cron every second, oncePer: '1s'): ${input.auditRuns.length} runs — ` +
      Object.entries(perInstance)
        .sort()
        .map(([name, n]) => `${name} ${n}`)
        .join(', ') +
      (ticksRunTwice.length === 0
        ? '; no tick ran twice'
        : `; ${ticksRunTwice.length} ticks ran twice!`),
  });

  // 7. Nothing else went wrong.
  const byAnswer: Record<string, number> = {};
  for (const r of records) {
    const key = ok200(r) ? r.answer.body.action : String(r.answer.status);
    byAnswer[key] = (byAnswer[key] ?? 0) + 1;
  }
  const unexpected = records.filter((r) => {
    if (r.answer.status === 200) return false;
    if (r.answer.status === 503 && r.fail === 'recoverable') return false;
    if (r.answer.status === 422 && r.resource === FATAL_RESOURCE) return false;
    return !(r.answer.status === 'connection-lost' && r.instance === kill?.instance);
  });
  claims.push({
    id: 'noUnexpectedAnswers',
    ok: unexpected.length === 0,
    text:
      unexpected.length === 0
        ? 'no unexpected answers (no 409 acquire timeouts, no 500s)'
        : `${unexpected.length} unexpected answers: ${unexpected
            .slice(0, 3)
            .map((r) => `${r.instance} ${r.resource} ${r.answer.status}`)
            .join(', ')}`,
  });

  const handovers = records
    .filter((r) => (ok200(r) && r.answer.body.previous) || r.answer.body?.refused === true)
    .map((r) => ({
      instance: r.instance,
      resource: r.resource,
      previous: ok200(r) ? r.answer.body.previous.name : r.answer.body.error,
      did: ok200(r) ? r.answer.body.action : 'refused',
    }));

  return {
    ok: claims.every((c) => c.ok),
    database: input.database,
    instances: input.instances.length,
    elapsedMs: input.elapsedMs,
    claims,
    requests: { total: records.length, waited: waits.length, longestWaitMs, byAnswer },
    resources,
    handovers,
    takeover,
    audit: { runs: input.auditRuns.length, perInstance, ticksRunTwice },
  };
}
