/**
 * The resolved secrets behind a keyring, for the crypto pool's worker threads
 * (a Keyring never hands out its secrets, and threads build their own). The
 * references are resolved again and each secret's fingerprint is checked
 * against the one the session already verified against the registry, so a
 * secret source that answers differently the second time fails the run before
 * anything is written instead of encrypting with an unverified key.
 */
import { fingerprintSecretAsync } from '../crypto/fingerprint.js';
import type { Keyring } from '../crypto/keyring.js';
import { resolveKeys, type KeyConfig, type ResolveOptions, type ResolvedKey } from '../crypto/keySources.js';
import { KeyMismatchError } from '../errors.js';

/**
 * The secrets of `keyring`'s keys in its order (primary first), resolved from
 * `refs` and checked against `fingerprints` (key id → verified fingerprint).
 * Fingerprints are memoized per secret, so the check costs nothing when the
 * secret is the one the session derived.
 */
export async function resolveKeyringSecrets(
  keyring: Keyring,
  refs: readonly KeyConfig[],
  options: ResolveOptions,
  fingerprints: ReadonlyMap<string, string>,
): Promise<ResolvedKey[]> {
  const wanted = refs.filter((r) => keyring.has(r.id));
  const resolved = new Map((await resolveKeys(wanted, options)).map((k) => [k.id, k]));
  const ordered: ResolvedKey[] = [];
  for (const key of keyring.keys) {
    const secret = resolved.get(key.id);
    const expected = fingerprints.get(key.id);
    if (!secret || expected === undefined || (await fingerprintSecretAsync(secret.secret)) !== expected) {
      throw new KeyMismatchError(key.id);
    }
    ordered.push(secret);
  }
  return ordered;
}
