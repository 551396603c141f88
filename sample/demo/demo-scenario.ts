import { setTimeout as sleep } from 'node:timers/promises';
import type { Reporter } from './reporter';
import type { HttpAnswer, SampleInstance } from './sample-instance';

/** Resources every instance is asked for at the same moment. */
export const STAMPEDE_RESOURCES = ['alpha', 'bravo', 'charlie'];
/** Its first build fails with a RecoverableError. */
export const RECOVERABLE_RESOURCE = 'delta';
/** Its first build fails with a FatalError. */
export const FATAL_RESOURCE = 'echo';
/** Its first builder is killed half-way. */
export const CRASH_RESOURCE = 'foxtrot';
/** Asked for by the background traffic only. */
export const BACKGROUND_RESOURCES = ['golf', 'hotel'];

/** A request counts as having waited for another holder's lock beyond this, in ms. */
export const WAIT_THRESHOLD_MS = 100;

/** One request of the demo and its answer. */
export interface RequestRecord {
  resource: string;
  instance: string;
  /** `leader`: sent first, alone; `follower`: sent while the leader holds the lock. */
  role: 'stampede' | 'leader' | 'follower' | 'background';
  fail?: 'recoverable' | 'fatal';
  sentAt: number;
  answeredAt: number;
  answer: HttpAnswer;
}

/** One run of the audit job, as `GET /audit-runs` lists it. */
export interface AuditRunRecord {
  tick: number;
  instance: string;
  fence: number;
  previousError: string | null;
}

/** What the kill did. */
export interface KillRecord {
  instance: string;
  pid: number | undefined;
  fence: number;
  killedAt: number;
}

/** Timings of the scenario. */
export interface ScenarioTimings {
  workMs: number;
  ttlMs: number;
  durationMs: number;
  requestTimeoutMs: number;
}

/** How long a request waited for the lock (0 when it did not get it). */
export function waitedMs(record: RequestRecord): number {
  const { status, body } = record.answer;
  if (status === 200 && typeof body?.lockedAt === 'number') return body.lockedAt - record.sentAt;
  if (status === 422 && body?.refused === true) return record.answeredAt - record.sentAt;
  return 0;
}

/**
 * Drives the instances: a stampede on a few resources, injected recoverable and fatal
 * failures, a holder killed half-way, and background traffic; prints each interesting
 * answer as it arrives.
 */
export class DemoScenario {
  readonly records: RequestRecord[] = [];
  auditRuns: AuditRunRecord[] = [];
  kill: KillRecord | undefined;
  private readonly reportedAuditRuns = new Set<number>();
  private backgroundStop = false;

  constructor(
    private readonly instances: SampleInstance[],
    private readonly reporter: Reporter,
    private readonly timings: ScenarioTimings,
  ) {}

  /** The instance killed half-way through building: the last one. */
  get victim(): SampleInstance {
    return this.instances[this.instances.length - 1];
  }

  /** Instances that are never killed. */
  get survivors(): SampleInstance[] {
    return this.instances.slice(0, -1);
  }

  /** Runs the whole scenario; resolves when every request has been answered. */
  async run(): Promise<void> {
    const started = Date.now();
    this.reporter.startProgress(Math.round(this.timings.durationMs / 1000));
    const background = this.backgroundTraffic();
    const watcher = this.watchProgress(started);
    try {
      this.reporter.event(
        `Stampede: every instance asked at once for ${STAMPEDE_RESOURCES.join(', ')}; ` +
          `${RECOVERABLE_RESOURCE} and ${FATAL_RESOURCE} fail on their first build.`,
      );
      await Promise.all([
        ...STAMPEDE_RESOURCES.map((id) => this.stampede(id)),
        this.failFirst(RECOVERABLE_RESOURCE, 'recoverable', this.survivors[1]),
        this.failFirst(FATAL_RESOURCE, 'fatal', this.survivors[2 % this.survivors.length]),
      ]);
      await this.crashHalfWay();
      const left = started + this.timings.durationMs - Date.now();
      if (left > 0) {
        this.reporter.event(`Background traffic goes on for ${(left / 1000).toFixed(0)} s more.`);
        await sleep(left);
      }
    } finally {
      this.backgroundStop = true;
      await background;
      await watcher.stop();
      this.reporter.stopProgress();
    }
    await this.pollAudit();
  }

  /** Every instance asks for `id` at the same moment. */
  private async stampede(id: string): Promise<void> {
    await Promise.all(this.instances.map((instance) => this.post(instance, id, 'stampede')));
  }

  /** `first` builds `id` with an injected failure; the others ask while it holds the lock. */
  private async failFirst(
    id: string,
    fail: 'recoverable' | 'fatal',
    first: SampleInstance,
  ): Promise<void> {
    const leader = this.post(first, id, 'leader', { fail });
    await this.untilHeld(`resource:${id}`, first);
    const others = this.instances.filter((instance) => instance !== first);
    await Promise.all([leader, ...others.map((instance) => this.post(instance, id, 'follower'))]);
  }

  /** The victim starts a long build; the others queue; the victim is killed half-way. */
  private async crashHalfWay(): Promise<void> {
    const id = CRASH_RESOURCE;
    const victim = this.victim;
    this.reporter.event(`Crash: ${victim.name} starts building ${id}, the others ask for it too.`);
    const leader = this.post(victim, id, 'leader', { workMs: 10 * this.timings.workMs + 60_000 });
    const state = await this.untilHeld(`resource:${id}`, victim);
    await this.until(`${id} to be half-built`, async () => {
      const answer = await this.observer().request('GET', `/resources/${id}`, 5_000);
      return answer.status === 200 && answer.body.status === 'building';
    });
    const followers = this.survivors.map((instance) => this.post(instance, id, 'follower'));
    await sleep(Math.min(500, this.timings.workMs / 2));
    victim.kill();
    this.kill = {
      instance: victim.name,
      pid: victim.pid,
      fence: state.fence,
      killedAt: victim.killedAt!,
    };
    this.reporter.event(
      `☠ SIGKILL ${victim.name} (pid ${victim.pid}) while it holds resource:${id} ` +
        `(fence ${state.fence}); ${id} is half-built. Its lease runs out within ${this.timings.ttlMs} ms.`,
    );
    await Promise.all([leader, ...followers]);
  }

  private async backgroundTraffic(): Promise<void> {
    const ids = [...STAMPEDE_RESOURCES, ...BACKGROUND_RESOURCES];
    const pending: Promise<void>[] = [];
    while (!this.backgroundStop) {
      const id = ids[Math.floor(Math.random() * ids.length)];
      const instance = this.survivors[Math.floor(Math.random() * this.survivors.length)];
      pending.push(this.post(instance, id, 'background'));
      await sleep(150);
    }
    await Promise.all(pending);
  }

  private async post(
    instance: SampleInstance,
    resource: string,
    role: RequestRecord['role'],
    query: { fail?: 'recoverable' | 'fatal'; workMs?: number } = {},
  ): Promise<void> {
    const params = new URLSearchParams();
    if (query.fail) params.set('fail', query.fail);
    if (query.workMs) params.set('workMs', String(query.workMs));
    const path = `/resources/${resource}${params.size > 0 ? `?${params}` : ''}`;
    if (role === 'leader') {
      this.reporter.event(
        `→ ${instance.name} POST ${path}` +
          (query.fail ? `   (this build will fail: ${query.fail})` : '   (a long build)'),
      );
    }
    const sentAt = Date.now();
    const answer = await instance.request('POST', path, this.timings.requestTimeoutMs);
    const record: RequestRecord = {
      resource,
      instance: instance.name,
      role,
      fail: query.fail,
      sentAt,
      answeredAt: Date.now(),
      answer,
    };
    this.records.push(record);
    this.describe(record);
  }

  /** Prints one answer; background answers only when they did something notable. */
  private describe(record: RequestRecord): void {
    const { instance, resource: id, answer } = record;
    const body = answer.body ?? {};
    const waited = `${(waitedMs(record) / 1000).toFixed(1)} s`;
    const quiet = record.role === 'background';
    if (answer.status === 'connection-lost') {
      this.reporter.event(`☠ ${instance} ${id}: no answer, the instance was killed`);
    } else if (answer.status === 200) {
      const previous = body.previous ? `${body.previous.name}` : '';
      switch (body.action) {
        case 'created':
          this.reporter.event(`✔ ${instance} built ${id}`);
          break;
        case 'exists':
          if (quiet) break;
          this.reporter.event(
            `· ${instance} ${id}: ` +
              (waitedMs(record) >= WAIT_THRESHOLD_MS
                ? `waited ${waited} for the lock, found it built by ${body.resource.builtBy}, skipped the work`
                : `already built by ${body.resource.builtBy}, nothing to do`),
          );
          break;
        case 'retried':
          this.reporter.event(
            `↻ ${instance} ${id}: the lock handed over ${previous} ("${body.previous.message}") → retried and built it`,
          );
          break;
        case 'repaired': {
          const after = this.kill ? ((body.lockedAt - this.kill.killedAt) / 1000).toFixed(1) : '?';
          this.reporter.event(
            `⚕ ${instance} ${id}: took the lock ${after} s after the kill and was told ${previous}` +
              ` (holder ${body.previous.holder ?? '?'} vanished) → repaired the half-built resource`,
          );
          break;
        }
      }
    } else if (answer.status === 503) {
      this.reporter.event(
        `✗ ${instance} ${id}: build failed with ${body.error} ("${body.message}") → 503; the lock stores the error for the next holder`,
      );
    } else if (answer.status === 422) {
      this.reporter.event(
        body.refused
          ? `⊘ ${instance} ${id}: the lock handed over ${body.error} from ${body.failedOn} → refused (422)`
          : `✗ ${instance} ${id}: build failed with ${body.error} ("${body.message}") → 422; the lock stores the error`,
      );
    } else {
      this.reporter.event(
        `! ${instance} ${id}: unexpected ${answer.status} ${JSON.stringify(body)}`,
      );
    }
  }

  /** Resolves with the lock's state once `holder` holds it. */
  private async untilHeld(name: string, holder: SampleInstance): Promise<{ fence: number }> {
    let fence = 0;
    await this.until(`${holder.name} to hold ${name}`, async () => {
      const answer = await this.observer().request('GET', '/locks', 5_000);
      const state = Array.isArray(answer.body)
        ? answer.body.find((lock: { name: string }) => lock.name === name)
        : undefined;
      if (state?.status !== 'held' || state.holder !== holder.name) return false;
      fence = state.fence;
      return true;
    });
    return { fence };
  }

  private async until(what: string, check: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + 10_000 + this.timings.workMs;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`The demo gave up waiting for ${what}.`);
      await sleep(25);
    }
  }

  /** The instance used to look at the cluster's state (never killed). */
  private observer(): SampleInstance {
    return this.survivors[0];
  }

  private watchProgress(started: number): { stop(): Promise<void> } {
    let stopped = false;
    const loop = (async () => {
      while (!stopped) {
        await this.pollAudit().catch(() => undefined);
        const built = this.records.filter(
          (r) => r.answer.status === 200 && r.answer.body.action !== 'exists',
        ).length;
        this.reporter.updateProgress((Date.now() - started) / 1000, {
          requests: this.records.length,
          waited: this.records.filter((r) => waitedMs(r) >= WAIT_THRESHOLD_MS).length,
          built,
          audit: this.auditRuns.length,
        });
        await sleep(500);
      }
    })();
    return {
      stop: async () => {
        stopped = true;
        await loop;
      },
    };
  }

  private async pollAudit(): Promise<void> {
    const answer = await this.observer().request('GET', '/audit-runs', 5_000);
    if (answer.status !== 200) return;
    this.auditRuns = answer.body;
    for (const run of this.auditRuns) {
      if (run.previousError === null || this.reportedAuditRuns.has(run.tick)) continue;
      this.reportedAuditRuns.add(run.tick);
      this.reporter.event(
        `⏱ audit job: ${run.instance} took its lock and was told ${run.previousError} → ran the tick anyway`,
      );
    }
  }
}
