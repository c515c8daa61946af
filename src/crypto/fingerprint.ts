/**
 * Key fingerprints: what the registry stores instead of a key, so a wrong secret
 * deployed under a known id is detected before anything is written.
 *
 * fingerprint = first 32 hex chars of HMAC-SHA256(
 *   key = PBKDF2-SHA256(secret utf8, salt "pg-rekey/fingerprint/v1", 100,000, 32),
 *   message "pg-rekey key fingerprint")
 *
 * It is format-independent (computed from the configured secret string) so one
 * fingerprint per key id suffices. The slow KDF makes brute-forcing a weak
 * secret from a leaked fingerprint expensive; the fingerprint is safe to print.
 */
import { createHmac } from 'node:crypto';
import { pbkdf2Memo, pbkdf2MemoAsync } from './kdf.js';

const SALT = Buffer.from('pg-rekey/fingerprint/v1', 'utf8');
const MESSAGE = 'pg-rekey key fingerprint';

function fromDerived(derived: Buffer): string {
  return createHmac('sha256', derived).update(MESSAGE, 'utf8').digest('hex').slice(0, 32);
}

/** The fingerprint of a resolved secret (memoized: PBKDF2 runs once per secret). */
export function fingerprintSecret(secret: string): string {
  return fromDerived(pbkdf2Memo(Buffer.from(secret, 'utf8'), SALT));
}

/** Asynchronous {@link fingerprintSecret}; shares its memo. */
export async function fingerprintSecretAsync(secret: string): Promise<string> {
  return fromDerived(await pbkdf2MemoAsync(Buffer.from(secret, 'utf8'), SALT));
}
