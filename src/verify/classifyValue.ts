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
 *    a Fernet token, whatever its timestamp) → the failure `wrong-format`: it is a
 *    ciphertext, just not of the configured format (a misconfigured target);
 *  - one of those prefixes behind leading whitespace → the failure `malformed`
 *    (`legacy-malformed` for `ENC_V1:`): a ciphertext damaged by a copy or an
 *    import, which `--encrypt-legacy` must not encrypt as plaintext;
 *  - anything else → `plaintext` (an email, a phone number, any text).
 * Values with the right prefix that do not decrypt keep the codec's reason.
 */
import type { Codec } from '../crypto/codec.js';
import { classifyForeignValue } from '../crypto/legacyValues.js';
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
      const foreign = classifyForeignValue(stored);
      if (foreign === 'legacy' || foreign === 'plaintext') return { kind: foreign };
      return { kind: 'failed', reason: foreign };
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
