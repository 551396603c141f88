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
 * unless `--yes`; without a terminal, `--yes` is required. Releases only the holding it
 * showed (its fence): if the lock changed hands meanwhile, the new holder keeps it.
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
  const released = await service.forceRelease(name, {
    reason: options.reason ?? MESSAGES.cli.defaultReason(options.operator),
    fence: lock.fence,
  });
  if (released) return MESSAGES.cli.released(shownName, holder, lock.fence);
  // The holding shown ended meanwhile: released by its holder, perhaps taken by another.
  const now = await service.inspect(name);
  if (now === null || now.status === 'free') return MESSAGES.cli.notHeld(shownName);
  throw new CliError(
    MESSAGES.cli.changedHands(
      shownName,
      holder,
      lock.fence,
      printable(now.holder ?? 'unknown'),
      now.fence,
    ),
    EXIT_CODES.failed,
  );
}

async function ask(question: string): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    return await rl.question(question);
  } finally {
    rl.close();
  }
}
