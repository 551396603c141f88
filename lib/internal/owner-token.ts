import { randomFillSync } from 'node:crypto';

/** Random bytes drawn from the CSPRNG at once: one call serves POOL_BYTES / 16 tokens. */
const POOL_BYTES = 4096;
const TOKEN_BYTES = 16;

const pool = Buffer.allocUnsafe(POOL_BYTES);
let offset = POOL_BYTES;

/**
 * A new owner token: 128 random bits in lowercase hex (32 characters). The bytes come
 * from a pool refilled from the CSPRNG once it is used up, so each token has fresh bytes
 * that no other token shares; a `randomBytes(16)` call per token costs several
 * microseconds.
 */
export function ownerToken(): string {
  if (offset === POOL_BYTES) {
    randomFillSync(pool);
    offset = 0;
  }
  // A string of its own (not a slice of a longer one): drivers bind flat strings faster.
  const token = pool.toString('hex', offset, offset + TOKEN_BYTES);
  offset += TOKEN_BYTES;
  return token;
}
