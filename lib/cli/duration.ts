import { durationMs } from '../internal/duration';
import { MESSAGES } from '../rlock.messages';
import { CliError } from './cli.error';
import { EXIT_CODES } from './exit-codes';

/** Parses an age such as `7d`, `12h`, `30m`, `45s` or `500ms` into milliseconds. */
export function parseDuration(text: string): number {
  const ms = durationMs(text);
  if (ms === null) {
    throw new CliError(MESSAGES.cli.badArguments(MESSAGES.cli.badDuration(text)), EXIT_CODES.usage);
  }
  return ms;
}

/** A short human duration: `850ms`, `12.3s`, `4m 05s`, `3h 02m`, `2d 03h`. */
export function formatDuration(ms: number): string {
  const abs = Math.abs(ms);
  if (abs < 1_000) return `${Math.round(abs)}ms`;
  if (abs < 60_000) return `${(abs / 1_000).toFixed(1)}s`;
  const pad = (n: number) => String(Math.floor(n)).padStart(2, '0');
  if (abs < 3_600_000) return `${Math.floor(abs / 60_000)}m ${pad((abs % 60_000) / 1_000)}s`;
  if (abs < 86_400_000) {
    return `${Math.floor(abs / 3_600_000)}h ${pad((abs % 3_600_000) / 60_000)}m`;
  }
  return `${Math.floor(abs / 86_400_000)}d ${pad((abs % 86_400_000) / 3_600_000)}h`;
}
