import { describe, expect, it } from 'vitest';
import { createCodecFromKeyring, deriveDjangoFernetKey, keyringFromResolved } from '../../src/index.js';
import { djangoVectors, fixedBytes } from './cryptoVectors.js';

function codecFor(v: (typeof djangoVectors)[number]) {
  const keyring = keyringFromResolved(v.format, [{ id: v.keyId ?? 'seed', secret: v.secretKey }]);
  return createCodecFromKeyring(v.format, keyring, { clock: () => v.time, randomBytes: fixedBytes(v.iv) });
}

describe('django-fernet vectors', () => {
  it('covers both Django formats', () => {
    expect(new Set(djangoVectors.map((v) => v.format))).toEqual(new Set(['django-fernet-v1', 'django-fernet-v2']));
  });

  it.each(djangoVectors)('$format derivation gives derivedFernetKey ($plaintext)', (v) => {
    const derived = deriveDjangoFernetKey(v.secretKey, v.format === 'django-fernet-v2' ? v.keyId : undefined);
    expect(derived.toString('base64url') + '=').toBe(v.derivedFernetKey);
  });

  it.each(djangoVectors)('$format encrypt gives `stored` byte for byte ($plaintext)', (v) => {
    expect(codecFor(v).encrypt(v.plaintext)).toBe(v.stored);
  });

  it.each(djangoVectors)('$format encrypt with an explicit timestamp gives `stored` ($plaintext)', (v) => {
    const codec = createCodecFromKeyring(
      v.format,
      keyringFromResolved(v.format, [{ id: v.keyId ?? 'seed', secret: v.secretKey }]),
      { clock: () => 0, randomBytes: fixedBytes(v.iv) },
    );
    expect(codec.encrypt(v.plaintext, { timestamp: v.time })).toBe(v.stored);
  });

  it.each(djangoVectors)('$format decrypt gives plaintext, key id and timestamp ($plaintext)', (v) => {
    expect(codecFor(v).decrypt(v.stored)).toEqual({ plaintext: v.plaintext, keyId: v.keyId ?? 'seed', timestamp: v.time });
  });

  it.each(djangoVectors)('$format wraps the inner fernetToken ($plaintext)', (v) => {
    const body = v.stored.slice(v.stored.lastIndexOf(':') + 1);
    expect(Buffer.from(body, 'base64url').toString('latin1')).toBe(v.fernetToken);
    // The inner token is a plain fernet value under the derived key.
    const fernet = createCodecFromKeyring('fernet', keyringFromResolved('fernet', [{ id: 'k', secret: v.derivedFernetKey }]));
    expect(fernet.decrypt(v.fernetToken).plaintext).toBe(v.plaintext);
  });

  it('v2 key id `default` uses the v1 derivation, other ids do not', () => {
    const secret = djangoVectors[0]!.secretKey;
    expect(deriveDjangoFernetKey(secret, 'default').equals(deriveDjangoFernetKey(secret))).toBe(true);
    expect(deriveDjangoFernetKey(secret, 'other').equals(deriveDjangoFernetKey(secret))).toBe(false);
  });
});
