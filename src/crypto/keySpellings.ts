/**
 * A fingerprint is of the secret's text (fingerprint.ts), but aes-256-gcm reads
 * its secret leniently: 32 bytes in base64 of either alphabet, padded or not
 * (aesGcmFormat.ts). So one aes key has up to four spellings, each with its own
 * fingerprint, and a registered key pasted under a new id in another spelling
 * (from a tool that writes the other alphabet) would not be recognised as the
 * same key. The other formats take one spelling per key (fernet: canonical
 * padded url-safe base64; the django formats: the SECRET_KEY text itself).
 */
import type { Format } from './formats.js';
import { decodeBase64AnyStrict, encodeBase64Url } from './strictBase64.js';

/** The other spellings of `secret` that are the same key in `format` (none but for aes-256-gcm). */
export function otherSpellings(format: Format, secret: string): string[] {
  if (format !== 'aes-256-gcm') return [];
  const bytes = decodeBase64AnyStrict(secret);
  if (bytes === undefined || bytes.length !== 32) return [];
  const standard = bytes.toString('base64');
  const spellings = new Set([standard, standard.replace(/=+$/, ''), encodeBase64Url(bytes, true), encodeBase64Url(bytes, false)]);
  spellings.delete(secret);
  return [...spellings];
}
