import { isAbsolute, resolve } from 'node:path';
import type { DataSourceOptions } from 'typeorm';
import { MESSAGES } from '../rlock.messages';
import { CliError } from './cli.error';
import { EXIT_CODES } from './exit-codes';

/** How long connecting to a database server may take, in ms. */
const CONNECT_TIMEOUT_MS = 10_000;

/** A database URL turned into TypeORM options. */
export interface ParsedDatabaseUrl {
  options: DataSourceOptions;
  /** The URL without its password, for messages. */
  display: string;
  /** The SQLite file, when it is one. */
  sqliteFile?: string;
}

/**
 * Reads `postgres://`, `postgresql://`, `mysql://`, `mariadb://`, `sqlite:/path`,
 * `sqlite:///path` or a plain file path (SQLite). Throws a usage {@link CliError}.
 */
export function parseDatabaseUrl(url: string): ParsedDatabaseUrl {
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
  if (scheme === undefined || /^[a-z]:[\\/]/i.test(url)) return sqlite(url, url);
  if (scheme === 'sqlite')
    return sqlite(url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, ''), url);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw usage(MESSAGES.cli.badUrl(JSON.stringify(redactUrl(url))));
  }
  if (parsed.hostname === '') throw usage(MESSAGES.cli.badUrl(redact(parsed)));
  switch (scheme) {
    case 'postgres':
    case 'postgresql':
      return {
        options: { type: 'postgres', url, connectTimeoutMS: CONNECT_TIMEOUT_MS },
        display: redact(parsed),
      };
    case 'mysql':
    case 'mariadb':
      return {
        options: {
          type: scheme,
          url: `mysql:${url.slice(scheme.length + 1)}`,
          connectTimeout: CONNECT_TIMEOUT_MS,
        },
        display: redact(parsed),
      };
    default:
      throw usage(MESSAGES.cli.unsupportedScheme(scheme));
  }
}

function sqlite(path: string, url: string): ParsedDatabaseUrl {
  if (path === '') throw usage(MESSAGES.cli.badUrl(JSON.stringify(url)));
  const file = isAbsolute(path) ? path : resolve(path);
  return { options: { type: 'better-sqlite3', database: file }, display: file, sqliteFile: file };
}

function redact(url: URL): string {
  const copy = new URL(url.href);
  if (copy.password !== '') copy.password = '***';
  for (const key of [...copy.searchParams.keys()]) {
    if (PASSWORD_KEY.test(key)) copy.searchParams.set(key, '***');
  }
  return copy.href;
}

/** Query parameters that carry a password (`?password=…`). */
const PASSWORD_KEY = /^(password|passwd|pass|pwd)$/i;
/** The user and password of a URL, also of one that cannot be parsed: the password runs to the last `@`. */
const CREDENTIALS = /^([a-z][a-z0-9+.-]*:\/\/[^:/?#@]*):.*@/is;
/** The same inside a text: a URL stops at white space. */
const CREDENTIALS_IN_TEXT = /([a-z][a-z0-9+.-]*:\/\/[^\s:/?#@]*):\S*@/gi;
/** A password in a query string. */
const PASSWORD_PARAM = /([?&](?:password|passwd|pass|pwd)=)[^&#\s]*/gi;

/**
 * A URL as it may be shown: its password (and any `password=` parameter) masked, also
 * when the URL cannot be parsed (`postgres://u:secret@h:badport/db` → `postgres://u:***@h:badport/db`).
 */
export function redactUrl(url: string): string {
  return url.replace(CREDENTIALS, '$1:***@').replace(PASSWORD_PARAM, '$1***');
}

/**
 * A message as it may be printed: each of `urls` (the URLs given on the command line)
 * replaced by its redacted form, and the password of any other URL in it masked.
 */
export function redactText(text: string, urls: readonly string[]): string {
  let shown = text;
  for (const url of urls) {
    const redacted = redactUrl(url);
    if (redacted !== url) shown = shown.replaceAll(url, redacted);
  }
  return shown.replace(CREDENTIALS_IN_TEXT, '$1:***@').replace(PASSWORD_PARAM, '$1***');
}

function usage(why: string): CliError {
  return new CliError(MESSAGES.cli.badArguments(why), EXIT_CODES.usage);
}
