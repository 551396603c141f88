import { parseArgs } from 'node:util';
import { MESSAGES } from '../rlock.messages';
import { CliError } from './cli.error';
import { EXIT_CODES } from './exit-codes';

/** The commands the command line knows. */
export const CLI_COMMANDS = ['status', 'inspect', 'release', 'purge'] as const;

/** What was asked on the command line. */
export interface CliArguments {
  command: (typeof CLI_COMMANDS)[number] | 'help';
  url: string;
  table: string;
  /** The lock name of `inspect` and `release`. */
  name: string;
  json: boolean;
  yes: boolean;
  reason: string | undefined;
  olderThan: string | undefined;
}

/** Parses and checks the arguments (node:util parseArgs); throws a usage {@link CliError}. */
export function parseCliArguments(argv: string[]): CliArguments {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (error) {
    throw usage((error as Error).message);
  }
  const { values, positionals } = parsed;
  const [command, ...rest] = positionals;
  const base = {
    url: values.url ?? '',
    table: values.table ?? 'rlock',
    name: '',
    json: values.json ?? false,
    yes: values.yes ?? false,
    reason: values.reason,
    olderThan: values['older-than'],
  };
  if (values.help) return { ...base, command: 'help' };
  if (command === undefined) throw usage(MESSAGES.cli.noCommand);
  if (!(CLI_COMMANDS as readonly string[]).includes(command)) {
    throw usage(MESSAGES.cli.unknownCommand(command));
  }
  const known = command as CliArguments['command'];
  const needsName = known === 'inspect' || known === 'release';
  if (needsName && rest.length === 0) throw usage(MESSAGES.cli.missingName(known));
  const extra = needsName ? rest.slice(1) : rest;
  if (extra.length > 0) throw usage(MESSAGES.cli.extraArguments(extra.join(' ')));
  if (base.url === '') throw usage(MESSAGES.cli.missingUrl);
  if (known === 'purge' && base.olderThan === undefined) {
    throw usage(MESSAGES.cli.missingOlderThan);
  }
  return { ...base, command: known, name: needsName ? rest[0] : '' };
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      url: { type: 'string' },
      table: { type: 'string' },
      json: { type: 'boolean' },
      yes: { type: 'boolean', short: 'y' },
      reason: { type: 'string' },
      'older-than': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}

function usage(why: string): CliError {
  return new CliError(MESSAGES.cli.badArguments(why), EXIT_CODES.usage);
}
