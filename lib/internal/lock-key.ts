import { createHash } from 'node:crypto';

/**
 * Primary key of a lock's row: the SHA-256 of its name's UTF-8 bytes, in lowercase hex.
 * ASCII hex compares the same under every collation, so names are told apart byte by
 * byte on every database (case, accents and trailing spaces included), and the key has
 * a fixed size whatever the name.
 */
export function lockKey(name: string): string {
  return createHash('sha256').update(name, 'utf8').digest('hex');
}
