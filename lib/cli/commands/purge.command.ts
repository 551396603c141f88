import { MESSAGES } from '../../rlock.messages';
import type { RLockService } from '../../rlock.service';

/** `purge --older-than AGE`: deletes the rows of free locks unused for that long. */
export async function purgeCommand(
  service: RLockService,
  olderThanMs: number,
  shown: string,
): Promise<string> {
  const count = await service.purge({ olderThan: olderThanMs });
  return MESSAGES.cli.purged(count, shown);
}
