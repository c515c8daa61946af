/**
 * The keyring: the configured keys of one format, first = primary (encrypts),
 * the rest decrypt-only. It holds derived key material privately (a #private
 * field: not enumerable, not shown by util.inspect, absent from JSON) and
 * exposes ids, roles and fingerprints only.
 */
import { ConfigError, KeyInvalidError } from '../errors.js';
import { fingerprintSecret, fingerprintSecretAsync } from './fingerprint.js';
import type { Format } from './formats.js';
import type { FernetKey } from './fernetToken.js';
import { getFormatHandler } from './getFormatHandler.js';
import { resolveKeys, type KeyConfig, type ResolveOptions, type ResolvedKey } from './keySources.js';

/** A key's role: the primary encrypts (and decrypts); the others only decrypt. */
export type KeyRole = 'primary' | 'decrypt-only';

/** What a keyring tells about a key: safe to print and to store. */
export interface KeyringKey {
  readonly id: string;
  readonly role: KeyRole;
  /** See fingerprint.ts; computed on first access (PBKDF2), then memoized. */
  readonly fingerprint: string;
}

let readMaterial: (keyring: Keyring, keyId: string) => unknown;
let readDistinct: (keyring: Keyring) => boolean;

/** The keys of one format. Build with {@link loadKeyring} or {@link keyringFromResolved}. */
export class Keyring {
  /** The format every key of this keyring is for. */
  readonly format: Format;
  /** Every key, primary first. */
  readonly keys: readonly KeyringKey[];
  readonly #materials = new Map<string, unknown>();
  /** True when no two keys share a secret, so at most one key can authenticate a value. */
  readonly #distinct: boolean;

  static {
    readMaterial = (keyring, keyId) => keyring.#materials.get(keyId);
    readDistinct = (keyring) => keyring.#distinct;
  }

  /** Validates and derives every key (synchronously; PBKDF2 is memoized per process). */
  constructor(format: Format, resolved: readonly ResolvedKey[]) {
    const handler = getFormatHandler(format);
    assertValidKeys(format, resolved);
    this.format = format;
    this.#distinct = new Set(resolved.map((key) => key.secret)).size === resolved.length;
    this.keys = Object.freeze(
      resolved.map(({ id, secret }, index) => {
        this.#materials.set(id, handler.prepareKey(id, secret));
        return lazyKey(id, index === 0 ? 'primary' : 'decrypt-only', secret);
      }),
    );
    if (format === 'fernet') assertDistinctSigningKeys(resolved.map(({ id }) => ({ id, key: this.#materials.get(id) as FernetKey })));
  }

  /** The primary key (the first configured). */
  get primary(): KeyringKey {
    return this.keys[0] as KeyringKey;
  }

  /** True when a key with this id is configured. */
  has(keyId: string): boolean {
    return this.#materials.has(keyId);
  }
}

/** Throws unless ids are well-formed and unique and every secret fits the format (no KDF). */
function assertValidKeys(format: Format, resolved: readonly ResolvedKey[]): void {
  const handler = getFormatHandler(format);
  if (resolved.length === 0) throw new ConfigError(`a ${format} keyring needs at least one key`);
  const seen = new Set<string>();
  for (const { id, secret } of resolved) {
    if (typeof id !== 'string' || id.length === 0 || /[\s\p{Cc}]/u.test(id)) {
      throw new KeyInvalidError(String(id), 'key ids must be non-empty and contain no whitespace or control characters');
    }
    if (seen.has(id)) throw new KeyInvalidError(id, `key id ${id} appears more than once; key ids must be unique`);
    seen.add(id);
    if (typeof secret !== 'string') throw new KeyInvalidError(id, `key ${id}: the resolved secret is not a string`);
    handler.validateKey(id, secret);
  }
}

/**
 * Two different Fernet keys with the same signing half would both authenticate
 * each other's values, and decrypting with the wrong one yields garbage (or,
 * once in 256, a valid-looking plaintext credited to the wrong key, which a
 * rotation would then skip). Such keys are refused, so at most one key can
 * authenticate a value, as decryption assumes. (Derived keys never collide so.)
 */
function assertDistinctSigningKeys(keys: readonly { id: string; key: FernetKey }[]): void {
  for (const [i, a] of keys.entries()) {
    for (const b of keys.slice(i + 1)) {
      if (a.key.signing.equals(b.key.signing) && !a.key.encryption.equals(b.key.encryption)) {
        throw new KeyInvalidError(b.id, `keys ${a.id} and ${b.id} share their signing half (the first 16 bytes) but not the rest — generate a new key ("pg-rekey keys generate --format fernet")`);
      }
    }
  }
}

function lazyKey(id: string, role: KeyRole, secret: string): KeyringKey {
  let fingerprint: string | undefined;
  const key = { id, role } as { id: string; role: KeyRole; fingerprint: string };
  // Lazy because worker threads build keyrings too and never need fingerprints;
  // enumerable so JSON/logging of a key shows it.
  Object.defineProperty(key, 'fingerprint', {
    enumerable: true,
    get: () => (fingerprint ??= fingerprintSecret(secret)),
  });
  return Object.freeze(key);
}

/** Key material of `keyId` for the codec; undefined when not configured. Internal. */
export function keyMaterialOf(keyring: Keyring, keyId: string): unknown {
  return readMaterial(keyring, keyId);
}

/** True when every key has its own secret (no two ids for one secret). Internal. */
export function keysAreDistinct(keyring: Keyring): boolean {
  return readDistinct(keyring);
}

/**
 * Builds a keyring synchronously from already-resolved secrets (worker threads
 * receive these in-process from their parent). Throws KeyInvalidError.
 */
export function keyringFromResolved(format: Format, resolved: readonly ResolvedKey[]): Keyring {
  return new Keyring(format, resolved);
}

/** What {@link loadKeyring} needs: the format, the configured keys and where references resolve. */
export interface LoadKeyringOptions extends ResolveOptions {
  readonly format: Format;
  readonly keys: readonly KeyConfig[];
}

/**
 * Resolves every key's secret, validates it for the format, and derives its
 * material and fingerprint (slow PBKDF2 runs in parallel off the main thread).
 * Throws KeySourceError, KeyInvalidError or ConfigError.
 */
export async function loadKeyring(options: LoadKeyringOptions): Promise<Keyring> {
  const resolved = await resolveKeys(options.keys, options);
  const handler = getFormatHandler(options.format);
  // Fail on a bad key before spending time on the KDF.
  assertValidKeys(options.format, resolved);
  await Promise.all(
    resolved.flatMap(({ id, secret }) => [handler.prewarmKey(id, secret), fingerprintSecretAsync(secret)]),
  );
  return new Keyring(options.format, resolved);
}
