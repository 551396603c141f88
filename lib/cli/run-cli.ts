import { Logger } from '@nestjs/common';
import { InvalidArgumentError } from '../errors/invalid-argument.error';
import { LockDatabaseError } from '../errors/lock-database.error';
import { MESSAGES } from '../rlock.messages';
import { parseCliArguments } from './cli-arguments';
import { CliError } from './cli.error';
import { inspectCommand } from './commands/inspect.command';
import { purgeCommand } from './commands/purge.command';
import { releaseCommand } from './commands/release.command';
import { statusCommand } from './commands/status.command';
import { redactText } from './database-url';
import { parseDuration } from './duration';
import { EXIT_CODES } from './exit-codes';
import { openLockService } from './open-lock-service';

/** Where the command line writes. */
export interface CliOutput {
  out(text: string): void;
  err(text: string): void;
}

/** Runs one command line; resolves with the exit code (never throws). */
export async function runCli(argv: string[], output: CliOutput): Promise<number> {
  return run(argv, {
    out: (text) => output.out(text),
    // No message may show a password given on the command line, whatever it quotes.
    err: (text) => output.err(redactText(text, argv)),
  });
}

async function run(argv: string[], output: CliOutput): Promise<number> {
  try {
    const args = parseCliArguments(argv);
    if (args.command === 'help') {
      output.out(MESSAGES.cli.usage);
      return EXIT_CODES.ok;
    }
    const olderThanMs = args.command === 'purge' ? parseDuration(args.olderThan!) : 0;
    // The library logs through Nest's Logger; a command line prints only its own output.
    Logger.overrideLogger(false);
    const opened = await openLockService(args.url, args.table);
    try {
      switch (args.command) {
        case 'status':
          output.out(await statusCommand(opened.service, args.table, args.json));
          break;
        case 'inspect':
          output.out(await inspectCommand(opened.service, args.name, args.json));
          break;
        case 'release':
          output.out(
            await releaseCommand(opened.service, args.name, {
              yes: args.yes,
              reason: args.reason,
              operator: opened.operator,
            }),
          );
          break;
        case 'purge':
          output.out(await purgeCommand(opened.service, olderThanMs, args.olderThan!));
          break;
      }
    } finally {
      await opened.close().catch(() => undefined);
    }
    return EXIT_CODES.ok;
  } catch (error) {
    if (error instanceof CliError) {
      output.err(error.message);
      return error.exitCode;
    }
    if (error instanceof InvalidArgumentError) {
      output.err(MESSAGES.cli.badArguments(error.message));
      return EXIT_CODES.usage;
    }
    if (error instanceof LockDatabaseError) {
      const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
      output.err(MESSAGES.cli.failed(`${error.message}${cause}`));
      return EXIT_CODES.unreachable;
    }
    output.err(MESSAGES.cli.failed(error instanceof Error ? error.message : String(error)));
    return EXIT_CODES.failed;
  }
}
