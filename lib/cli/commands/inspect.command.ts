import { MESSAGES } from '../../rlock.messages';
import type { RLockService } from '../../rlock.service';
import { CliError } from '../cli.error';
import { formatDuration } from '../duration';
import { EXIT_CODES } from '../exit-codes';
import { printable } from '../format-table';
import { errorFields, toJson } from './status.command';

/** `inspect NAME`: one lock, field by field, with the error its last holder stored. */
export async function inspectCommand(
  service: RLockService,
  name: string,
  json: boolean,
): Promise<string> {
  const lock = await service.inspect(name);
  if (lock === null)
    throw new CliError(MESSAGES.cli.unknownLock(printable(name)), EXIT_CODES.unknownLock);
  if (json) return JSON.stringify(toJson(lock), null, 2);
  const now = Date.now();
  const when = (date: Date | null) =>
    date === null ? '-' : `${date.toISOString()} (${relative(date.getTime() - now)})`;
  const lines: [string, string][] = [
    ['name', printable(lock.name)],
    ['status', lock.status],
    ['holder', printable(lock.holder ?? '-')],
    ['fence', String(lock.fence)],
    ['acquired at', when(lock.acquiredAt)],
    ['expires at', when(lock.expiresAt)],
    ['released at', when(lock.releasedAt)],
    ['hold until', when(lock.holdUntil)],
    ['hold limit', when(lock.holdLimit)],
    ['last tick', when(lock.lastTickAt)],
    ['last outcome', lock.lastOutcome ?? '-'],
  ];
  if (lock.lastError === null) {
    lines.push(['last error', '-']);
  } else {
    const fields = errorFields(lock.lastError);
    lines.push([
      'last error',
      `${printable(String(fields.name))}: ${printable(String(fields.message))}`,
    ]);
    for (const [key, value] of Object.entries(fields)) {
      if (key === 'name' || key === 'message') continue;
      const shown = typeof value === 'string' ? value : JSON.stringify(value);
      lines.push([`  ${key}`, printable(String(shown)).replaceAll('\\u000a', '\n    ')]);
    }
  }
  const width = Math.max(...lines.map(([key]) => key.length));
  return lines.map(([key, value]) => `${`${key}:`.padEnd(width + 1)} ${value}`).join('\n');
}

function relative(ms: number): string {
  return ms >= 0 ? `in ${formatDuration(ms)}` : `${formatDuration(ms)} ago`;
}
