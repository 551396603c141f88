import { performance } from 'node:perf_hooks';
import { lockKey } from '../../lib/internal/lock-key';
import type { TestDatabase } from './databases';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls `probe` until it returns something other than undefined or false; rejects after
 * `timeoutMs`. Resolves with that value and how long it took.
 */
export async function until<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  timeoutMs = 10_000,
  everyMs = 10,
): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) {
      return { value, ms: performance.now() - started };
    }
    if (performance.now() - started > timeoutMs) {
      throw new Error(`${what}: not within ${timeoutMs} ms`);
    }
    await sleep(everyMs);
  }
}

/** The database clock in µs, as the dialects write it. */
export function nowUs(kind: TestDatabase['kind']): string {
  switch (kind) {
    case 'postgres':
      return '(extract(epoch FROM clock_timestamp()) * 1000000)::bigint';
    case 'mariadb':
      return `TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))`;
    case 'sqlite':
      return `(CAST(ROUND(unixepoch('subsec') * 1000) AS INTEGER) * 1000)`;
  }
}

/** One place in a lock's line (a row of `<table>_waiters`). */
export interface LinePlace {
  holder: string;
  token: string;
  /** Its lease has not run out. */
  live: boolean;
}

/** Runs one statement with `?` placeholders and resolves with its rows. */
export type RowQuery = (text: string, params?: unknown[]) => Promise<any[]>;

/** The places in the line of the lock `name`, in line order. */
export async function lineOf(
  query: RowQuery,
  kind: TestDatabase['kind'],
  table: string,
  name: string,
): Promise<LinePlace[]> {
  const rows = await query(
    `SELECT holder, token, expires_at > ${nowUs(kind)} AS live FROM ${table}_waiters
     WHERE lock_id = ? ORDER BY queued_at, token`,
    [lockKey(name)],
  );
  return rows.map((r) => ({
    holder: String(r.holder),
    token: String(r.token),
    live: r.live === true || Number(r.live) === 1,
  }));
}

/** Resolves once the live places of `name` are held by exactly `holders`, in this order. */
export function waitForLine(
  query: RowQuery,
  kind: TestDatabase['kind'],
  table: string,
  name: string,
  holders: string[],
  timeoutMs = 10_000,
): Promise<{ value: string[]; ms: number }> {
  return until(
    `line of ${name} = [${holders.join(', ')}]`,
    async () => {
      const live = (await lineOf(query, kind, table, name))
        .filter((p) => p.live)
        .map((p) => p.holder);
      return live.join('|') === holders.join('|') ? live : undefined;
    },
    timeoutMs,
  );
}
