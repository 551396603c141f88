import { existsSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { DataSource } from 'typeorm';
import { createDialect } from '../dialects/create-dialect';
import { InvalidArgumentError } from '../errors/invalid-argument.error';
import { LockDatabaseError } from '../errors/lock-database.error';
import { RLockConfigurationError } from '../errors/rlock-configuration.error';
import { resolveOptions } from '../internal/resolve-options';
import { MESSAGES } from '../rlock.messages';
import { RLockService } from '../rlock.service';
import { CliError } from './cli.error';
import { parseDatabaseUrl } from './database-url';
import { EXIT_CODES } from './exit-codes';

/** A lock service on a database the command line opened; `close()` when done. */
export interface OpenLockService {
  service: RLockService;
  /** Who is operating, for the stored force-release reason. */
  operator: string;
  close(): Promise<void>;
}

/**
 * Connects to the database of `url` and starts the library's own lock service on
 * `table` (same dialects, same checks). Failures become {@link CliError}s with the
 * exit code that tells them apart: bad URL, unreachable database, missing table.
 */
export async function openLockService(url: string, table: string): Promise<OpenLockService> {
  const parsed = parseDatabaseUrl(url);
  let options;
  try {
    options = resolveOptions({ tableName: table, holder: 'nestjs-rlock command line' });
  } catch (error) {
    if (error instanceof InvalidArgumentError) {
      throw new CliError(MESSAGES.cli.badArguments(error.message), EXIT_CODES.usage);
    }
    throw error;
  }
  if (parsed.sqliteFile !== undefined && !existsSync(parsed.sqliteFile)) {
    throw new CliError(MESSAGES.cli.noSqliteFile(parsed.sqliteFile), EXIT_CODES.unreachable);
  }
  const dataSource = new DataSource({ ...parsed.options, entities: [], logging: false });
  try {
    await dataSource.initialize();
  } catch (error) {
    throw new CliError(
      MESSAGES.cli.unreachable(parsed.display, describe(error)),
      EXIT_CODES.unreachable,
    );
  }
  const service = new RLockService(options, createDialect(dataSource, table));
  try {
    await service.onModuleInit();
  } catch (error) {
    await dataSource.destroy().catch(() => undefined);
    if (error instanceof RLockConfigurationError) {
      throw new CliError(MESSAGES.cli.tableMissing(table), EXIT_CODES.tableMissing);
    }
    if (error instanceof LockDatabaseError) {
      throw new CliError(
        MESSAGES.cli.unreachable(parsed.display, describe(error.cause)),
        EXIT_CODES.unreachable,
      );
    }
    throw error;
  }
  return {
    service,
    operator: `${safeUser()}@${hostname()}`,
    close: async () => {
      await service.onApplicationShutdown();
      await dataSource.destroy();
    },
  };
}

function describe(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return describe(error.errors[0]);
  if (error instanceof Error)
    return error.message || (error as { code?: string }).code || error.name;
  return String(error);
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
}
