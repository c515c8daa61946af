/**
 * The Codec: encrypt, decrypt and re-encrypt stored values of one format with
 * one keyring. Synchronous and allocation-lean because the rotator runs it on
 * every value (tens of thousands per second per core).
 *
 * Decrypt failure reasons (DecryptError.reason):
 *  - 'not-a-string': the value is not a string.
 *  - 'wrong-format': it lacks this format's prefix (plaintext, another format).
 *    For `fernet` the "prefix" is `gAAAAA` (version byte + high timestamp bits),
 *    or base64 of bytes with a Fernet header (see isFernetTokenText).
 *  - 'malformed': right prefix, but bad/non-canonical base64, trailing data,
 *    truncation, a bad version byte, a non-block-aligned ciphertext, bad PKCS7
 *    padding under a valid MAC, or a plaintext that is not UTF-8 (decrypt only).
 *  - 'no-key': keyed formats (django-fernet-v2, aes-256-gcm): the value names a
 *    key id that is not configured or is withheld. Formats without a key id
 *    (fernet, django-fernet-v1): no available key authenticates the value — with
 *    one key or many, since a tampered value and a value under an unconfigured
 *    key cannot be told apart, and "a key is missing" is the actionable case.
 *  - 'bad-mac': keyed formats only: the value names a configured key that does
 *    not authenticate it (tampered or corrupted).
 *  - 'expired': only when ttlSeconds is given: the Fernet timestamp is older
 *    than the TTL or more than 60 s in the future (as pyca/cryptography does).
 *    Checked after authentication. aes-256-gcm values have no timestamp and never expire.
 */
import { KeyInvalidError } from '../errors.js';
import { decryptFailure, printableKeyId, type OpenedValue } from './formatHandler.js';
import type { Format } from './formats.js';
import { getFormatHandler } from './getFormatHandler.js';
import { keyMaterialOf, keysAreDistinct, type Keyring } from './keyring.js';
import { defaultRandomBytes, systemClockSeconds, type RandomSource } from './randomSource.js';

/** Injectable time and randomness (tests reproduce vectors with these). */
export interface CodecOptions {
  /** Current Unix time in seconds (default: the system clock, floored). */
  readonly clock?: () => number;
  /** IV / nonce source (default: a pooled CSPRNG). */
  readonly randomBytes?: RandomSource;
}

/** Options of {@link Codec.encrypt}. */
export interface EncryptOptions {
  /** Key to encrypt with (default: the primary). */
  readonly keyId?: string;
  /** Fernet timestamp to write, in seconds (default: the clock); ignored by aes-256-gcm. */
  readonly timestamp?: number;
}

/** Options of {@link Codec.decrypt}. */
export interface DecryptOptions {
  /** Key ids to act as if absent (retirement rehearsal). */
  readonly without?: readonly string[];
  /** Enforce a Fernet TTL (rotation never does). */
  readonly ttlSeconds?: number;
}

/** A decrypted value and the key that authenticated it. */
export interface Decrypted {
  readonly plaintext: string;
  readonly keyId: string;
  /** The Fernet timestamp (seconds); absent for aes-256-gcm. */
  readonly timestamp?: number;
}

/** Options of {@link Codec.reencrypt}. */
export interface ReencryptOptions {
  /** Re-encrypt even when the value is already under the target key. */
  readonly force?: boolean;
  /** Key ids to act as if absent while decrypting. */
  readonly without?: readonly string[];
}

/** The outcome of {@link Codec.reencrypt}. */
export interface Reencrypted {
  /** The value to store: new, or the input itself when `changed` is false. */
  readonly stored: string;
  readonly fromKeyId: string;
  readonly toKeyId: string;
  /** False when the value was already under `toKeyId` and returned unchanged. */
  readonly changed: boolean;
}

const utf8Strict = new TextDecoder('utf-8', { fatal: true });
const MAX_CLOCK_SKEW = 60;
const NO_KEYS: readonly string[] = [];

/** Encrypts/decrypts values of one format with one keyring. Build with createCodecFromKeyring or createCodec. */
export class Codec {
  /** The stored-value format. */
  readonly format: Format;
  /** The keys (ids, roles, fingerprints). */
  readonly keyring: Keyring;
  readonly #handler;
  readonly #clock: () => number;
  readonly #random: RandomSource;
  /** [id, material] in primary-first order, for formats that must try keys. */
  readonly #order: ReadonlyArray<readonly [string, unknown]>;
  /**
   * Start trying keys at the one that last worked. Safe only when no two keys
   * share a secret: then at most one key authenticates a value and the order
   * cannot change the result, while a rotation (most values under one old key)
   * saves one HMAC per value. With shared secrets, strict primary-first applies.
   */
  readonly #affinity: boolean;
  #lastHit = 0;

  /** Prefer createCodecFromKeyring; `format` must equal the keyring's. */
  constructor(format: Format, keyring: Keyring, options: CodecOptions = {}) {
    if (keyring.format !== format) {
      throw new TypeError(`a ${keyring.format} keyring cannot build a ${format} codec`);
    }
    this.format = format;
    this.keyring = keyring;
    this.#handler = getFormatHandler(format);
    this.#clock = options.clock ?? systemClockSeconds;
    this.#random = options.randomBytes ?? defaultRandomBytes;
    this.#order = keyring.keys.map((key) => [key.id, keyMaterialOf(keyring, key.id)] as const);
    this.#affinity = keysAreDistinct(keyring);
  }

  /** Encrypts `plaintext` (UTF-8) with the primary key or `options.keyId`. */
  encrypt(plaintext: string, options: EncryptOptions = {}): string {
    if (typeof plaintext !== 'string') throw new TypeError('encrypt() takes a string plaintext');
    return this.#seal(Buffer.from(plaintext, 'utf8'), options.keyId ?? this.keyring.primary.id, options.timestamp);
  }

  /** Decrypts a stored value; throws DecryptError (see the module comment for reasons). */
  decrypt(stored: unknown, options: DecryptOptions = {}): Decrypted {
    const { opened, keyId } = this.#open(stored, options.without ?? NO_KEYS, options.ttlSeconds);
    let plaintext: string;
    try {
      plaintext = utf8Strict.decode(opened.plaintext);
    } catch {
      throw decryptFailure('malformed', this.format, 'the decrypted bytes are not UTF-8 text');
    }
    return opened.timestamp === undefined ? { plaintext, keyId } : { plaintext, keyId, timestamp: opened.timestamp };
  }

  /**
   * Decrypts and encrypts again under `toKeyId` (default: the primary), keeping
   * the Fernet timestamp like MultiFernet.rotate and the plaintext bytes exactly.
   * A value already under `toKeyId` is returned unchanged (`changed: false`)
   * after full decryption, so the caller can skip the write; `force` re-encrypts
   * it with a fresh IV anyway.
   */
  reencrypt(stored: unknown, toKeyId?: string, options: ReencryptOptions = {}): Reencrypted {
    const target = toKeyId ?? this.keyring.primary.id;
    this.#materialFor(target);
    const { opened, keyId } = this.#open(stored, options.without ?? NO_KEYS, undefined);
    if (keyId === target && options.force !== true) {
      return { stored: stored as string, fromKeyId: keyId, toKeyId: target, changed: false };
    }
    const next = this.#seal(opened.plaintext, target, opened.timestamp);
    return { stored: next, fromKeyId: keyId, toKeyId: target, changed: true };
  }

  #materialFor(keyId: string): unknown {
    const material = keyMaterialOf(this.keyring, keyId);
    if (material === undefined) {
      throw new KeyInvalidError(keyId, `key ${keyId} is not in the ${this.format} keyring`);
    }
    return material;
  }

  #seal(plaintext: Uint8Array, keyId: string, timestamp: number | undefined): string {
    const material = this.#materialFor(keyId);
    const ts = timestamp ?? Math.floor(this.#clock());
    if (!Number.isSafeInteger(ts) || ts < 0) throw new RangeError('a timestamp is a non-negative integer of seconds');
    return this.#handler.seal(material, keyId, plaintext, ts, this.#random);
  }

  #open(stored: unknown, without: readonly string[], ttlSeconds: number | undefined): { opened: OpenedValue; keyId: string } {
    if (typeof stored !== 'string') throw decryptFailure('not-a-string', this.format, `expected a string, got ${describeType(stored)}`);
    const parsed = this.#handler.parse(stored);
    let opened: OpenedValue | undefined;
    let keyId: string | undefined;
    if (this.#handler.keyed) {
      keyId = parsed.keyId as string;
      if (!this.keyring.has(keyId)) {
        throw decryptFailure('no-key', this.format, `it names key ${printableKeyId(keyId)}, which is not configured`);
      }
      if (without.includes(keyId)) {
        throw decryptFailure('no-key', this.format, `it names key ${keyId}, which is withheld`);
      }
      opened = this.#handler.open(keyMaterialOf(this.keyring, keyId), parsed);
      if (opened === undefined) {
        throw decryptFailure('bad-mac', this.format, `key ${keyId} does not authenticate it (tampered or corrupted)`);
      }
    } else {
      const order = this.#order;
      const start = this.#affinity ? this.#lastHit : 0;
      for (let step = 0; step < order.length; step += 1) {
        const index = (start + step) % order.length;
        const [id, material] = order[index] as readonly [string, unknown];
        if (without.length > 0 && without.includes(id)) continue;
        opened = this.#handler.open(material, parsed);
        if (opened !== undefined) {
          keyId = id;
          this.#lastHit = index;
          break;
        }
      }
      if (opened === undefined || keyId === undefined) {
        const tried = this.#order.map(([id]) => id).filter((id) => !without.includes(id));
        throw decryptFailure('no-key', this.format, `no configured key authenticates it (tried: ${tried.join(', ') || 'none'})`);
      }
    }
    if (ttlSeconds !== undefined && opened.timestamp !== undefined) {
      const now = this.#clock();
      if (opened.timestamp + ttlSeconds < now) {
        throw decryptFailure('expired', this.format, `older than the ${ttlSeconds} s TTL`);
      }
      if (opened.timestamp > now + MAX_CLOCK_SKEW) {
        throw decryptFailure('expired', this.format, 'its timestamp is in the future beyond the allowed clock skew');
      }
    }
    return { opened, keyId };
  }
}

function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Buffer.isBuffer(value)) return 'a Buffer';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}
