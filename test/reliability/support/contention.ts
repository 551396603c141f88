import { createInterface } from 'node:readline';
import type { ChildProcess } from 'node:child_process';
import { spawnWorker, type FakeClock } from './agent';
import type { ReliabilityDb } from './reliability-db';

/** One group of contender processes on one lock name. */
export interface ContenderGroup {
  name: string;
  processes: number;
  iterations?: number;
  durationMs?: number;
  counterKey: string;
  ttlMs: number;
  timeoutMs: number;
  fenced?: boolean;
  sectionMs?: number;
  /** Wall-clock fakes, one per process (cycled). */
  clocks?: FakeClock[];
  /** application_name of the processes' sessions (PostgreSQL). */
  appName?: string;
}

/** A running contender child. */
export interface Contender {
  child: ChildProcess;
  group: ContenderGroup;
  /** Resolves with the child's summary line (or null if it died). */
  done: Promise<{ done: number; grants: number; maxWaitMs: number } | null>;
}

/** Spawns one contender of `group`; with `gate`, it waits for GO on stdin before starting. */
export function spawnContender(
  rdb: ReliabilityDb,
  group: ContenderGroup,
  index: number,
  gate: boolean,
): Contender & { ready: Promise<void>; go(): void } {
  const clock = group.clocks?.[index % group.clocks.length];
  const child = spawnWorker(
    'contender.js',
    rdb.childConfig({
      name: group.name,
      counterTable: rdb.kvTable,
      counterKey: group.counterKey,
      iterations: group.iterations,
      durationMs: group.durationMs,
      ttlMs: group.ttlMs,
      timeoutMs: group.timeoutMs,
      fenced: group.fenced ?? false,
      sectionMs: group.sectionMs,
      eventsFile: rdb.eventsFile(`${group.counterKey}-${index}`),
      poolSize: 2,
      appName: group.appName ?? 'rlock-rel-contender',
      startGate: gate,
    }),
    clock,
  );
  let stderr = '';
  child.stderr!.on('data', (c) => (stderr += String(c)));
  const lines = createInterface({ input: child.stdout! });
  let summary: any = null;
  let resolveReady!: () => void;
  const ready = new Promise<void>((resolve) => (resolveReady = resolve));
  lines.on('line', (line) => {
    if (line.startsWith('READY')) resolveReady();
    else if (line.startsWith('{')) summary = JSON.parse(line);
  });
  const done = new Promise<any>((resolve) =>
    child.on('exit', (code, signal) => {
      resolveReady();
      if (code !== 0 && signal === null && stderr)
        process.stderr.write(`contender ${child.pid}: ${stderr}\n`);
      resolve(summary);
    }),
  );
  return { child, group, done, ready, go: () => child.stdin!.end('GO\n') };
}

/**
 * Starts the contender processes of every group, waits until all are ready, and lets
 * them start together.
 */
export async function startContenders(
  rdb: ReliabilityDb,
  groups: ContenderGroup[],
): Promise<Contender[]> {
  const contenders: Array<ReturnType<typeof spawnContender>> = [];
  for (const group of groups) {
    await rdb.seed(group.counterKey);
    for (let i = 0; i < group.processes; i++) contenders.push(spawnContender(rdb, group, i, true));
  }
  await Promise.all(contenders.map((c) => c.ready));
  for (const c of contenders) c.go();
  return contenders;
}
