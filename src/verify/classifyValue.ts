/**
 * What one stored value is, for `verify`: a ciphertext some key decrypts, a
 * NULL/empty, a legacy `ENC_V1:` value, plain text, or a failure with a reason
 * class. Pure and synchronous: it runs on every value of every target column.
 *
 * The classification rule for values the target's codec refuses as
 * `wrong-format` (they lack its prefix):
 *  - `ENC_V1:` + url-safe base64 of zlib-compressed UTF-8 → `legacy` if it
 *    decodes, else the failure `legacy-malformed`;
 *  - another pg-rekey format's prefix (`FERNET_V1:`, `FERNET_V2:`, `PGRK1:`,
 *    a Fernet token's `gAAAAA`) → the failure `wrong-format`: it is a
 *    ciphertext, just not of the configured format (a misconfigured target);
 *  - anything else → `plaintext` (an email, a phone number, any text).
 * Values with the right prefix that do not decrypt keep the codec's reason.
 */
import { inflateSync } from 'node:zlib';
import type { Codec } from '../crypto/codec.js';
import { decodeBase64UrlStrict } from '../crypto/strictBase64.js';
import { DecryptError, type DecryptFailureReason } from '../errors.js';

/** A problem class verify reports for a value (never the value itself). */
export type VerifyFailureReason =
  | DecryptFailureReason
  /** An ENC_V1: value that is not base64 of zlib-compressed UTF-8. */
  | 'legacy-malformed'
  /** `--without` rehearsal: only a withheld key decrypts it. */
  | 'needs-withheld-key';

/** The classification of one stored value. */
export type ValueClass =
  | { kind: 'null' }
  | { kind: 'empty' }
  | { kind: 'ok'; keyId: string }
  | { kind: 'legacy' }
  | { kind: 'plaintext' }
  | { kind: 'failed'; reason: VerifyFailureReason; withheldKeyId?: string };

/** The prefix of the application's old keyless format. */
export const LEGACY_PREFIX = 'ENC_V1:';

// Prefixes of the ciphertext formats pg-rekey knows (DESIGN §4); a value with
// one of them is never mistaken for plain text.
const CIPHERTEXT_PREFIXES = ['FERNET_V1:', 'FERNET_V2:', 'PGRK1:', 'gAAAAA'];

const utf8Strict = new TextDecoder('utf-8', { fatal: true });

// A legacy value is small text; a "zip bomb" row must not exhaust memory.
const MAX_LEGACY_BYTES = 1 << 20;

/** True when `stored` is an `ENC_V1:` value that decodes to UTF-8 text. Never returns the text. */
export function isDecodableLegacy(stored: string): boolean {
  const body = stored.slice(LEGACY_PREFIX.length);
  // Python's urlsafe_b64encode pads; accept unpadded too, but nothing lenient.
  const compressed = decodeBase64UrlStrict(body, 'required') ?? decodeBase64UrlStrict(body, 'forbidden');
  if (!compressed || compressed.length === 0) return false;
  try {
    utf8Strict.decode(inflateSync(compressed, { maxOutputLength: MAX_LEGACY_BYTES }));
    return true;
  } catch {
    return false;
  }
}

/** Options of {@link classifyValue}. */
export interface ClassifyOptions {
  /** Key ids to act as if absent (the retirement rehearsal). */
  readonly without?: readonly string[];
}

/** Classifies one stored value of a target column; throws only on programming errors. */
export function classifyValue(codec: Codec, stored: string | null, options: ClassifyOptions = {}): ValueClass {
  if (stored === null) return { kind: 'null' };
  if (stored === '') return { kind: 'empty' };
  const without = options.without ?? [];
  try {
    return { kind: 'ok', keyId: codec.decrypt(stored, without.length > 0 ? { without } : {}).keyId };
  } catch (err) {
    if (!(err instanceof DecryptError)) throw err;
    if (err.reason === 'wrong-format') {
      if (stored.startsWith(LEGACY_PREFIX)) {
        return isDecodableLegacy(stored) ? { kind: 'legacy' } : { kind: 'failed', reason: 'legacy-malformed' };
      }
      if (CIPHERTEXT_PREFIXES.some((p) => stored.startsWith(p))) return { kind: 'failed', reason: 'wrong-format' };
      return { kind: 'plaintext' };
    }
    if (err.reason === 'no-key' && without.length > 0) {
      // Tell "only the withheld key reads it" (the rehearsal's finding) apart
      // from "no key at all reads it" (lost data): one extra decrypt, failures only.
      try {
        const keyId = codec.decrypt(stored).keyId;
        if (without.includes(keyId)) return { kind: 'failed', reason: 'needs-withheld-key', withheldKeyId: keyId };
      } catch {
        // Unreadable with every key too: keep 'no-key'.
      }
    }
    return { kind: 'failed', reason: err.reason };
  }
}
