import { createHmac, pbkdf2Sync } from 'node:crypto';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  KeyInvalidError,
  createCodec,
  deriveDjangoFernetKey,
  fingerprintSecret,
  generateKey,
  keyringFromResolved,
  loadKeyring,
} from '../../src/index.js';
import { DJANGO_SECRET_ALPHABET } from '../../src/crypto/generateKey.js';
import { pbkdf2Computations } from '../../src/crypto/kdf.js';

/** A secret no other test uses, so the per-process memo starts cold. */
function fresh(label: string): string {
  return `fresh-${label}-${Math.random().toString(36).slice(2)}-${Date.now()}`;
}

describe('keyring', () => {
  it('has the first key primary, the rest decrypt-only, and answers has()', () => {
    const ring = keyringFromResolved('django-fernet-v1', [
      { id: 'new', secret: 'n' },
      { id: 'old', secret: 'o' },
    ]);
    expect(ring.primary.id).toBe('new');
    expect(ring.keys.map((k) => [k.id, k.role])).toEqual([
      ['new', 'primary'],
      ['old', 'decrypt-only'],
    ]);
    expect(ring.has('old')).toBe(true);
    expect(ring.has('gone')).toBe(false);
  });

  it('never exposes secrets or derived keys through JSON or inspect', () => {
    const secret = 'very-secret-django-key-value-1234567890';
    const ring = keyringFromResolved('django-fernet-v1', [{ id: 'k', secret }]);
    const derived = deriveDjangoFernetKey(secret);
    const shown = JSON.stringify(ring) + inspect(ring, { depth: 10, showHidden: true }) + JSON.stringify(ring.keys);
    expect(shown).not.toContain(secret);
    for (const encoding of ['base64url', 'base64', 'hex'] as const) {
      expect(shown).not.toContain(derived.subarray(0, 12).toString(encoding));
      expect(shown).not.toContain(derived.subarray(16, 28).toString(encoding));
    }
    expect(shown).toContain(ring.primary.fingerprint);
  });

  it('refuses duplicate ids, empty keyrings and malformed ids', () => {
    expect(() =>
      keyringFromResolved('django-fernet-v1', [
        { id: 'a', secret: 'x' },
        { id: 'a', secret: 'y' },
      ]),
    ).toThrow(/key id a appears more than once/);
    expect(() => keyringFromResolved('django-fernet-v1', [])).toThrow(ConfigError);
    for (const id of ['', 'has space', 'tab\there']) {
      expect(() => keyringFromResolved('django-fernet-v1', [{ id, secret: 'x' }])).toThrow(KeyInvalidError);
    }
    expect(() => keyringFromResolved('django-fernet-v2', [{ id: 'a:b', secret: 'x' }])).toThrow(/cannot contain ':'/);
    expect(() => keyringFromResolved('aes-256-gcm', [{ id: 'é'.repeat(200), secret: generateKey('aes-256-gcm') }])).toThrow(
      KeyInvalidError,
    );
  });

  it('refuses fernet keys that are not 32 bytes of padded url-safe base64, naming id and format', () => {
    const good = Buffer.alloc(32, 0xfb).toString('base64url') + '=';
    expect(keyringFromResolved('fernet', [{ id: 'ok', secret: good }]).has('ok')).toBe(true);
    for (const secret of [
      good.slice(0, -1), // unpadded
      Buffer.alloc(32, 0xfb).toString('base64'), // standard alphabet
      Buffer.alloc(31).toString('base64url') + '=',
      Buffer.alloc(33).toString('base64url'),
      good + ' ',
    ]) {
      let err: unknown;
      try {
        keyringFromResolved('fernet', [{ id: 'k7', secret }]);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(KeyInvalidError);
      expect((err as KeyInvalidError).keyId).toBe('k7');
      expect((err as Error).message).toMatch(/k7.*fernet.*32 bytes/);
      expect((err as Error).message).not.toContain(secret.slice(0, 12));
    }
    expect(() => keyringFromResolved('django-fernet-v1', [{ id: 'k', secret: '' }])).toThrow(/k.*django-fernet-v1.*empty/);
  });
});

describe('PBKDF2 memo', () => {
  it('derives once per key per process, and fingerprints lazily once', () => {
    const a = fresh('a');
    const b = fresh('b');
    const keys = [
      { id: 'a', secret: a },
      { id: 'b', secret: b },
    ];
    const start = pbkdf2Computations();
    const ring = keyringFromResolved('django-fernet-v1', keys);
    expect(pbkdf2Computations() - start).toBe(2);
    keyringFromResolved('django-fernet-v1', keys);
    keyringFromResolved('django-fernet-v1', [...keys].reverse());
    expect(pbkdf2Computations() - start).toBe(2);
    // v2 derives per (secret, key id); 'default' is the v1 derivation, already known.
    keyringFromResolved('django-fernet-v2', [
      { id: 'default', secret: a },
      { id: 'x', secret: a },
    ]);
    expect(pbkdf2Computations() - start).toBe(3);
    const prints = ring.keys.map((k) => k.fingerprint);
    expect(pbkdf2Computations() - start).toBe(5);
    expect(ring.keys.map((k) => k.fingerprint)).toEqual(prints);
    expect(fingerprintSecret(a)).toBe(prints[0]);
    expect(pbkdf2Computations() - start).toBe(5);
  });

  it('loadKeyring derives material and fingerprints once, in parallel', async () => {
    const env = { NEW: fresh('new'), OLD: fresh('old') };
    const keys = [
      { id: 'new', secret: 'env:NEW' },
      { id: 'old', secret: 'env:OLD' },
    ];
    const start = pbkdf2Computations();
    const ring = await loadKeyring({ format: 'django-fernet-v1', keys, env });
    expect(pbkdf2Computations() - start).toBe(4);
    ring.keys.forEach((k) => expect(k.fingerprint).toMatch(/^[0-9a-f]{32}$/));
    const codec = await createCodec({ format: 'django-fernet-v1', keys, env });
    expect(codec.decrypt(codec.encrypt('x')).keyId).toBe('new');
    expect(pbkdf2Computations() - start).toBe(4);
  });
});

describe('fingerprints', () => {
  it('follow the documented formula', () => {
    const secret = 'fingerprint-formula-secret';
    const k = pbkdf2Sync(Buffer.from(secret), Buffer.from('pg-rekey/fingerprint/v1'), 100_000, 32, 'sha256');
    const expected = createHmac('sha256', k).update('pg-rekey key fingerprint').digest('hex').slice(0, 32);
    expect(fingerprintSecret(secret)).toBe(expected);
  });

  it('are format-independent and differ per secret', () => {
    const aes = generateKey('aes-256-gcm');
    const viaV1 = keyringFromResolved('django-fernet-v1', [{ id: 'k', secret: aes }]).primary.fingerprint;
    const viaGcm = keyringFromResolved('aes-256-gcm', [{ id: 'k', secret: aes }]).primary.fingerprint;
    expect(viaV1).toBe(viaGcm);
    expect(fingerprintSecret(aes + 'x')).not.toBe(viaV1);
  });
});

describe('generateKey', () => {
  it('fernet: padded url-safe base64 of 32 random bytes, accepted by the keyring', () => {
    expect(generateKey('fernet', () => Buffer.alloc(32, 0xff))).toBe('_'.repeat(42) + '8=');
    const key = generateKey('fernet');
    expect(key).toMatch(/^[A-Za-z0-9_-]{43}=$/);
    expect(keyringFromResolved('fernet', [{ id: 'g', secret: key }]).has('g')).toBe(true);
    expect(generateKey('fernet')).not.toBe(key);
  });
  it('aes-256-gcm: base64 of 32 random bytes, accepted by the keyring', () => {
    expect(generateKey('aes-256-gcm', () => Buffer.alloc(32, 0xff))).toBe('/'.repeat(42) + '8=');
    expect(keyringFromResolved('aes-256-gcm', [{ id: 'g', secret: generateKey('aes-256-gcm') }]).has('g')).toBe(true);
  });
  it('django: 50 characters from Django’s alphabet, uniformly (bytes >= 250 rejected)', () => {
    for (const format of ['django-fernet-v1', 'django-fernet-v2'] as const) {
      const key = generateKey(format);
      expect(key).toHaveLength(50);
      for (const ch of key) expect(DJANGO_SECRET_ALPHABET).toContain(ch);
    }
    let n = 0;
    const seq = () => Buffer.from(Array.from({ length: 64 }, () => [0, 1, 250, 255, 49][n++ % 5] as number));
    expect(generateKey('django-fernet-v1', seq)).toBe('ab)ab)'.repeat(9).slice(0, 50));
  });
});

describe('fernet keys sharing their signing half', () => {
  // Same first 16 bytes (HMAC key), different AES halves: each authenticates the other's values.
  const signing = Buffer.alloc(16, 1);
  const keyA = Buffer.concat([signing, Buffer.alloc(16, 2)]).toString('base64url') + '=';
  const keyB = Buffer.concat([signing, Buffer.alloc(16, 3)]).toString('base64url') + '=';

  it('are refused together, naming both ids and never a secret', () => {
    let err: unknown;
    try {
      keyringFromResolved('fernet', [{ id: 'a', secret: keyA }, { id: 'b', secret: keyB }]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KeyInvalidError);
    expect((err as Error).message).toContain('keys a and b share their signing half');
    expect((err as Error).message).not.toContain(keyA);
  });

  it('one key twice under two ids is still accepted (the same key)', () => {
    expect(() => keyringFromResolved('fernet', [{ id: 'a', secret: keyA }, { id: 'a2', secret: keyA }])).not.toThrow();
  });
});

describe('an unknown format', () => {
  it('is a ConfigError naming the formats, not a TypeError (JavaScript callers have no type to stop them)', async () => {
    await expect(createCodec({ format: 'nope' as never, keys: [{ id: 'k', secret: 'env:K' }], env: { K: 'x' } })).rejects.toThrow(ConfigError);
  });

  it('is a ConfigError for generateKey too, never an undefined key', () => {
    expect(() => generateKey('nope' as never)).toThrow(ConfigError);
    expect(() => generateKey(['fernet', 'aes-256-gcm'] as never)).toThrow(ConfigError);
  });
});
