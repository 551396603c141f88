import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Whether this run is the full suite (restarts, soak, full sizes): `npm run test:reliability:full`. */
export const FULL = process.env.RLOCK_RELIABILITY_FULL === '1';

/** Where the suite leaves its figures; scripts/reliability/report.js turns them into RELIABILITY.md. */
export const FIGURES_DIR = join(__dirname, '..', '..', '..', '.tmp', 'reliability', 'figures');

const ENV =
  'RLOCK_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test RLOCK_TEST_MYSQL_URL=mysql://root@127.0.0.1:3306/test';

/** The command that reproduces the figures of one spec file. */
export function reproduce(specFile: string): string {
  const full = FULL ? 'RLOCK_RELIABILITY_FULL=1 ' : '';
  return `${full}${ENV} npx jest --selectProjects reliability test/reliability/${specFile}`;
}

/** p-th percentile (nearest rank) of a list of numbers. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** Rounds for display. */
export function round(value: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/**
 * Records the figures of one test on one database: printed, and written as JSON under
 * .tmp/reliability/figures for RELIABILITY.md.
 */
export function recordFigures(
  test: string,
  title: string,
  database: string,
  specFile: string,
  figures: Record<string, unknown>,
): void {
  const mode = FULL ? 'full' : 'fast';
  const entry = {
    test,
    title,
    database,
    mode,
    figures,
    command: reproduce(specFile),
    at: new Date().toISOString(),
  };
  mkdirSync(FIGURES_DIR, { recursive: true });
  writeFileSync(
    join(FIGURES_DIR, `${test}.${database}.${mode}.json`),
    JSON.stringify(entry, null, 2),
  );
  process.stdout.write(`[reliability] ${test} ${database} (${mode}): ${JSON.stringify(figures)}\n`);
}
