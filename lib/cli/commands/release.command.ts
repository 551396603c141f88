import { createInterface } from 'node:readline/promises';
import { MESSAGES } from '../../rlock.messages';
import type { RLockService } from '../../rlock.service';
import { CliError } from '../cli.error';
import { EXIT_CODES } from '../exit-codes';
import { printable } from '../format-table';

/** Options of `release NAME`. */
export interface ReleaseCommandOptions {
  yes: boolean;
  reason: string | undefined;
  operator: string;
}

/**
 * `release NAME`: force-releases a held lock. Asks for confirmation on a terminal
 * unless `--yes`; without a terminal, `--yes` is required.
 */
export async function releaseCommand(
  service: RLockService,
  name: string,
  options: ReleaseCommandOptions,
): Promise<string> {
  const shownName = printable(name);
  const lock = await service.inspect(name);
  if (lock === null)
    throw new CliError(MESSAGES.cli.unknownLock(shownName), EXIT_CODES.unknownLock);
  if (lock.status === 'free') return MESSAGES.cli.notHeld(shownName);
  const holder = printable(lock.holder ?? 'unknown');
  if (!options.yes) {
    if (!process.stdin.isTTY || !process.stdout.isTTY) {
      throw new CliError(MESSAGES.cli.needsYes, EXIT_CODES.usage);
    }
    const answer = await ask(MESSAGES.cli.confirmRelease(shownName, holder, lock.fence));
    if (!/^y(es)?$/i.test(answer.trim()))
      throw new CliError(MESSAGES.cli.declined, EXIT_CODES.failed);
  }
  const released = await service.forceRelease(
    name,
    options.reason ?? MESSAGES.cli.defaultReason(options.operator),
  );
  return released
    ? MESSAGES.cli.released(shownName, holder, lock.fence)
    : MESSAGES.cli.notHeld(shownName);
}

async function ask(question: string): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    return await rl.question(question);
  } finally {
    rl.close();
  }
}
