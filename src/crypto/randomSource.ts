/**
 * Where IVs and nonces come from. Injectable so vectors reproduce exactly; the
 * default draws from a pooled CSPRNG buffer because one randomBytes() call per
 * value is a measurable share of the rotator's crypto time.
 */
import { randomFillSync } from 'node:crypto';

/** Returns `size` fresh random bytes; the caller copies them before the next call. */
export type RandomSource = (size: number) => Uint8Array;

const POOL_SIZE = 4096;
const pool = Buffer.allocUnsafe(POOL_SIZE);
let offset = POOL_SIZE;

/**
 * Pooled CSPRNG source. Each call returns a view of bytes never handed out
 * before; the view is only valid until the next call, which is all the codecs need.
 */
export const defaultRandomBytes: RandomSource = (size) => {
  if (size > POOL_SIZE) return randomFillSync(Buffer.allocUnsafe(size));
  if (offset + size > POOL_SIZE) {
    randomFillSync(pool);
    offset = 0;
  }
  const view = pool.subarray(offset, offset + size);
  offset += size;
  return view;
};

/** The current time in whole Unix seconds, the clock Fernet timestamps use. */
export function systemClockSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
