/**
 * Fixed seeds (explicit opt-in for reproducible runs): any number, bigint,
 * string or 32-byte key becomes the 32-byte ChaCha20 key of the Rng.
 */
import { createHash } from 'crypto';
import { InvalidArgumentError } from '../errors';
import { requireNumber } from '../validate';

/** What a caller may pass as a seed. */
export type SeedLike = number | bigint | string | Uint8Array;

/**
 * A 32-byte key for `new Rng({ seed })`: a 32-byte Uint8Array or a 64-hex
 * string is used as is; anything else is hashed (SHA-256 of a tagged text).
 */
export function seedToKey(seed: SeedLike): Uint8Array {
  if (Object.prototype.toString.call(seed) === '[object Uint8Array]') {
    const u = seed as Uint8Array;
    if (u.length === 32) return Uint8Array.from(u);
    return Uint8Array.from(createHash('sha256').update('dp-lora seed bytes:').update(u).digest());
  }
  if (typeof seed === 'string' && /^[0-9a-fA-F]{64}$/.test(seed))
    return Uint8Array.from(Buffer.from(seed, 'hex'));
  if (typeof seed === 'number') requireNumber('seed', seed);
  if (typeof seed !== 'number' && typeof seed !== 'bigint' && typeof seed !== 'string')
    throw new InvalidArgumentError('seed', 'seed must be a number, bigint, string or Uint8Array');
  return Uint8Array.from(
    createHash('sha256')
      .update(`dp-lora seed ${typeof seed}:${String(seed)}`)
      .digest(),
  );
}
