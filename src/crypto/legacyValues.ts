/**
 * Values a target column may hold that are not in its encrypted format: the
 * Django application's old keyless `ENC_V1:` values (url-safe base64 of
 * zlib-compressed UTF-8) and values stored in plain text. verify counts them;
 * `rotate --encrypt-legacy` encrypts them.
 */
import { inflateSync } from 'node:zlib';
import { isFernetTokenText } from './fernetFormats.js';
import { decodeBase64UrlStrict } from './strictBase64.js';

/** The prefix of the application's old keyless format. */
export const LEGACY_PREFIX = 'ENC_V1:';

// Prefixes of the ciphertext formats pg-rekey knows (DESIGN §4): a value with
// one of them, or a Fernet token (whatever its timestamp), is a ciphertext of
// another format, never plain text.
const CIPHERTEXT_PREFIXES = ['FERNET_V1:', 'FERNET_V2:', 'PGRK1:'];

function isCiphertextText(value: string): boolean {
  return CIPHERTEXT_PREFIXES.some((p) => value.startsWith(p)) || isFernetTokenText(value);
}

// A legacy value is small text; a "zip bomb" row must not exhaust memory.
const MAX_LEGACY_BYTES = 1 << 20;

const utf8Strict = new TextDecoder('utf-8', { fatal: true });

/**
 * What a value outside the target's format is. `malformed`: a ciphertext prefix
 * behind leading whitespace (see classifyForeignValue).
 */
export type ForeignValueClass = 'legacy' | 'legacy-malformed' | 'plaintext' | 'wrong-format' | 'malformed';

/** Decodes an `ENC_V1:` value to its text, or undefined when it is not one that decodes. */
export function decodeLegacy(stored: string): string | undefined {
  if (!stored.startsWith(LEGACY_PREFIX)) return undefined;
  const body = stored.slice(LEGACY_PREFIX.length);
  // Python's urlsafe_b64encode pads; accept unpadded too, but nothing lenient.
  const compressed = decodeBase64UrlStrict(body, 'required') ?? decodeBase64UrlStrict(body, 'forbidden');
  if (!compressed || compressed.length === 0) return undefined;
  try {
    return utf8Strict.decode(inflateSync(compressed, { maxOutputLength: MAX_LEGACY_BYTES }));
  } catch {
    return undefined;
  }
}

/** Classifies a value the target's codec refused as `wrong-format` (it lacks the format's prefix). */
export function classifyForeignValue(stored: string): ForeignValueClass {
  if (stored.startsWith(LEGACY_PREFIX)) return decodeLegacy(stored) === undefined ? 'legacy-malformed' : 'legacy';
  if (isCiphertextText(stored)) return 'wrong-format';
  // A ciphertext whose text gained leading whitespace (a copy-paste, a BOM from
  // a CSV import) is a damaged ciphertext, not plaintext: as plaintext,
  // `rotate --encrypt-legacy` would encrypt the ciphertext itself as the
  // user's data, and verify would count the row as healthy from then on.
  const trimmed = stored.trimStart();
  if (trimmed !== stored) {
    if (trimmed.startsWith(LEGACY_PREFIX)) return 'legacy-malformed';
    if (isCiphertextText(trimmed)) return 'malformed';
  }
  return 'plaintext';
}
