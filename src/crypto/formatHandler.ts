/**
 * The contract each stored-value format implements. A handler knows its text
 * encoding, its key material and its cryptography; the Codec owns the policy
 * (which keys to try, withholding, TTL, error reasons for key lookup).
 */
import { DecryptError, type DecryptFailureReason } from '../errors.js';
import type { Format } from './formats.js';
import type { RandomSource } from './randomSource.js';

/** A structurally valid stored value, decoded but not yet authenticated. */
export interface ParsedValue {
  /** The key id the value names (keyed formats only). */
  readonly keyId: string | undefined;
  /** The decoded binary payload (a raw Fernet token or an envelope body). */
  readonly data: Buffer;
}

/** An authenticated, decrypted value. */
export interface OpenedValue {
  readonly plaintext: Buffer;
  /** Fernet timestamp in seconds; undefined for formats without one. */
  readonly timestamp: number | undefined;
}

/** One stored-value format. Key material is opaque outside its handler. */
export interface FormatHandler {
  readonly format: Format;
  /** True when values name their key id. */
  readonly keyed: boolean;
  /** Checks the secret's shape (cheap, no KDF); throws KeyInvalidError. */
  validateKey(keyId: string, secret: string): void;
  /** Runs any slow derivation off the main thread so prepareKey hits the memo. */
  prewarmKey(keyId: string, secret: string): Promise<void>;
  /** Builds the key material used by seal/open (validates first). */
  prepareKey(keyId: string, secret: string): unknown;
  /** Encrypts and encodes; `timestamp` is ignored by formats without one. */
  seal(material: unknown, keyId: string, plaintext: Uint8Array, timestamp: number, random: RandomSource): string;
  /** Decodes strictly; throws DecryptError 'wrong-format' or 'malformed'. */
  parse(value: string): ParsedValue;
  /** Authenticates and decrypts; undefined when the key does not authenticate the value. */
  open(material: unknown, parsed: ParsedValue): OpenedValue | undefined;
}

/** Builds a DecryptError whose message names the format and the problem, never the value. */
export function decryptFailure(reason: DecryptFailureReason, format: Format, problem: string): DecryptError {
  return new DecryptError(reason, `${format} value: ${problem}`);
}

/**
 * Key ids read from a stored value are untrusted text (a corrupted value could
 * put plaintext there), so they are printed only when they look like an id.
 */
export function printableKeyId(keyId: string): string {
  return /^[A-Za-z0-9_.-]{1,64}$/.test(keyId) ? keyId : '(an unprintable key id)';
}
