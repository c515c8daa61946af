import { describe, expect, it } from 'vitest';
import { createCodecFromKeyring, keyringFromResolved } from '../../src/index.js';
import { DecryptError, type DecryptFailureReason } from '../../src/errors.js';
import { fernetSpec, fixedBytes, specSeconds } from './cryptoVectors.js';

function codecFor(secret: string, now: string, iv?: number[]) {
  const keyring = keyringFromResolved('fernet', [{ id: 'spec', secret }]);
  return createCodecFromKeyring('fernet', keyring, {
    clock: () => specSeconds(now),
    ...(iv ? { randomBytes: fixedBytes(iv) } : {}),
  });
}

function reasonOf(fn: () => unknown): DecryptFailureReason | 'no error' {
  try {
    fn();
  } catch (err) {
    if (err instanceof DecryptError) return err.reason;
    throw err;
  }
  return 'no error';
}

describe('fernet spec vectors', () => {
  it.each(fernetSpec.generate)('generate: same time and IV give the spec token ($src)', (v) => {
    expect(codecFor(v.secret, v.now, v.iv).encrypt(v.src)).toBe(v.token);
  });

  it.each(fernetSpec.verify)('verify: decrypts with ttl $ttl_sec at the spec time', (v) => {
    const result = codecFor(v.secret, v.now).decrypt(v.token, { ttlSeconds: v.ttl_sec });
    expect(result).toEqual({ plaintext: v.src, keyId: 'spec', timestamp: 499162800 });
  });

  const expected: Record<string, DecryptFailureReason> = {
    'incorrect mac': 'no-key',
    'too short': 'malformed',
    // Not even the Fernet version prefix: it is not a Fernet token at all.
    'invalid base64': 'wrong-format',
    'payload size not multiple of block size': 'malformed',
    'payload padding error': 'malformed',
    'far-future TS (unacceptable clock skew)': 'expired',
    'expired TTL': 'expired',
    'incorrect IV (causes padding error)': 'malformed',
  };

  it('has an expected reason for every invalid vector', () => {
    expect(fernetSpec.invalid.map((v) => v.desc).sort()).toEqual(Object.keys(expected).sort());
  });

  it.each(fernetSpec.invalid)('invalid: $desc is rejected', (v) => {
    const codec = codecFor(v.secret, v.now);
    expect(reasonOf(() => codec.decrypt(v.token, { ttlSeconds: v.ttl_sec }))).toBe(expected[v.desc]);
  });

  it('rotation (no TTL) still reads the expired and far-future tokens, which authenticate', () => {
    for (const desc of ['expired TTL', 'far-future TS (unacceptable clock skew)']) {
      const v = fernetSpec.invalid.find((x) => x.desc === desc)!;
      expect(codecFor(v.secret, v.now).decrypt(v.token).keyId).toBe('spec');
    }
  });
});
