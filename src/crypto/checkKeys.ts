/**
 * `pg-rekey keys check`: resolve every configured key, validate it for each
 * target format in use, and round-trip a test value with each key. Fails with
 * the first KeySourceError / KeyInvalidError; success means every key is usable.
 */
import { PgRekeyError } from '../errors.js';
import { createCodecFromKeyring } from './createCodec.js';
import { fingerprintSecretAsync } from './fingerprint.js';
import type { Format } from './formats.js';
import { keyringFromResolved, type KeyRole } from './keyring.js';
import { resolveKeys, type KeyConfig } from './keySources.js';

/** The parts of the resolved config checkKeys reads (structurally, to keep crypto independent of config). */
export interface CheckKeysInput {
  readonly baseDir: string;
  readonly keys: readonly KeyConfig[];
  readonly targets: ReadonlyArray<{ readonly format: Format }>;
}

/** One checked key: safe to print. */
export interface CheckedKey {
  readonly id: string;
  readonly fingerprint: string;
  readonly role: KeyRole;
}

/** What checkKeys found: the formats exercised and every key, primary first. */
export interface CheckKeysReport {
  readonly formats: readonly Format[];
  readonly keys: readonly CheckedKey[];
}

const PROBE = 'pg-rekey keys check ✓';

/** Loads every key and proves it encrypts and decrypts in each target format. */
export async function checkKeys(
  config: CheckKeysInput,
  options: { readonly env?: Readonly<Record<string, string | undefined>> } = {},
): Promise<CheckKeysReport> {
  const resolved = await resolveKeys(config.keys, { baseDir: config.baseDir, ...(options.env ? { env: options.env } : {}) });
  const formats = [...new Set(config.targets.map((t) => t.format))];
  for (const format of formats) {
    const codec = createCodecFromKeyring(format, keyringFromResolved(format, resolved));
    for (const { id } of resolved) {
      const back = codec.decrypt(codec.encrypt(PROBE, { keyId: id }));
      if (back.plaintext !== PROBE) {
        throw new PgRekeyError('KEY_INVALID', `key ${id}: a ${format} round trip did not return the test value`);
      }
    }
  }
  // Fingerprints do not depend on the format (and are memoized), so compute them directly.
  const fingerprints = await Promise.all(resolved.map(({ secret }) => fingerprintSecretAsync(secret)));
  return {
    formats,
    keys: resolved.map(({ id }, index) => ({
      id,
      fingerprint: fingerprints[index] as string,
      role: index === 0 ? 'primary' : 'decrypt-only',
    })),
  };
}
