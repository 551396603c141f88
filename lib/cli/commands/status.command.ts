import type { LockState } from '../../interfaces/lock-state.interface';
import { MESSAGES } from '../../rlock.messages';
import type { RLockService } from '../../rlock.service';
import { formatDuration } from '../duration';
import { formatTable, printable } from '../format-table';

/** `status`: every lock as a table (or JSON), ordered by name. */
export async function statusCommand(
  service: RLockService,
  table: string,
  json: boolean,
): Promise<string> {
  const locks = await service.list();
  if (json) return JSON.stringify(locks.map(toJson), null, 2);
  if (locks.length === 0) return MESSAGES.cli.noLocks(table);
  const now = Date.now();
  return formatTable(
    ['NAME', 'STATUS', 'HOLDER', 'FENCE', 'EXPIRES IN', 'HOLD', 'LAST TICK', 'LAST OUTCOME'],
    locks.map((lock) => [
      printable(lock.name),
      lock.status,
      lock.status === 'free' ? '-' : printable(lock.holder ?? '?'),
      String(lock.fence),
      expiresIn(lock, now),
      hold(lock, now),
      lock.lastTickAt === null ? '-' : lock.lastTickAt.toISOString().replace('.000Z', 'Z'),
      lock.lastOutcome ?? '-',
    ]),
  );
}

/** Time left on the lease, by this machine's clock (the status itself comes from the database clock). */
function expiresIn(lock: LockState, now: number): string {
  if (lock.status === 'free' || lock.expiresAt === null) return '-';
  const left = lock.expiresAt.getTime() - now;
  if (lock.status === 'expired') return `expired ${formatDuration(Math.max(0, -left))} ago`;
  return formatDuration(Math.max(0, left));
}

/**
 * The hold bounds at work: `min hold` (released, kept taken by `minHoldMs` until EXPIRES
 * IN), `max in 1m 30s` (held, the `maxHoldMs` limit ends the holding then), `max reached`
 * (the holding overran its limit and the lock is free to take).
 */
function hold(lock: LockState, now: number): string {
  if (lock.holdUntil !== null) return 'min hold';
  if (lock.holdLimit === null) return '-';
  if (lock.status === 'held') {
    return `max in ${formatDuration(Math.max(0, lock.holdLimit.getTime() - now))}`;
  }
  return lock.status === 'expired' && lock.lastOutcome === 'overran' ? 'max reached' : '-';
}

/** A lock state as plain JSON (instants as ISO strings, the error as its fields). */
export function toJson(lock: LockState): Record<string, unknown> {
  return {
    name: lock.name,
    status: lock.status,
    holder: lock.holder,
    fence: lock.fence,
    acquiredAt: lock.acquiredAt?.toISOString() ?? null,
    expiresAt: lock.expiresAt?.toISOString() ?? null,
    releasedAt: lock.releasedAt?.toISOString() ?? null,
    lastOutcome: lock.lastOutcome,
    holdUntil: lock.holdUntil?.toISOString() ?? null,
    holdLimit: lock.holdLimit?.toISOString() ?? null,
    lastTickAt: lock.lastTickAt?.toISOString() ?? null,
    lastError:
      lock.lastError === null
        ? null
        : { ...errorFields(lock.lastError), stack: lock.lastError.stack },
  };
}

/** The fields of a stored error: name, message, code and its own data (no stack). */
export function errorFields(error: Error): Record<string, unknown> {
  const fields: Record<string, unknown> = { name: error.name, message: error.message };
  for (const [key, value] of Object.entries(error)) {
    if (key !== 'name' && key !== 'message' && key !== 'stack') fields[key] = value;
  }
  return fields;
}
