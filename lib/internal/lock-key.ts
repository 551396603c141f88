import { createHash } from 'node:crypto';

/** How many recent names keep their key; names repeat, hashing each call costs about a microsecond. */
const CACHE_SIZE = 1024;
const cache = new Map<string, string>();

/**
 * Primary key of a lock's row: the SHA-256 of its name's UTF-8 bytes, in lowercase hex.
 * ASCII hex compares the same under every collation, so names are told apart byte by
 * byte on every database (case, accents and trailing spaces included), and the key has
 * a fixed size whatever the name. The keys of the last names used are kept.
 */
export function lockKey(name: string): string {
  let key = cache.get(name);
  if (key === undefined) {
    key = createHash('sha256').update(name, 'utf8').digest('hex');
    // Oldest first: drop the name inserted longest ago.
    if (cache.size >= CACHE_SIZE) cache.delete(cache.keys().next().value!);
    cache.set(name, key);
  }
  return key;
}
