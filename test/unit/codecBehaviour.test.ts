import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Codec, createCodecFromKeyring, generateKey, keyringFromResolved, type Format } from '../../src/index.js';
import { DecryptError, KeyInvalidError, type DecryptFailureReason } from '../../src/errors.js';
import { sealFernetToken, splitFernetKey, openFernetToken } from '../../src/crypto/fernetToken.js';
import { djangoVectors, fernetSpec, fixedBytes } from './cryptoVectors.js';

const v1 = djangoVectors.find((v) => v.format === 'django-fernet-v1' && v.plaintext === 'user@example.com')!;
const v2 = djangoVectors.find((v) => v.format === 'django-fernet-v2' && v.keyId !== 'default')!;
const spec = fernetSpec.generate[0]!;
const NEW_SECRET = 'django-insecure-new-key-2026q1-zzzzzzzzzzzzzzzzzzzz';

function codec(format: Format, keys: Array<[string, string]>, options: ConstructorParameters<typeof Codec>[2] = {}) {
  return createCodecFromKeyring(format, keyringFromResolved(format, keys.map(([id, secret]) => ({ id, secret }))), options);
}
function reasonOf(fn: () => unknown): DecryptFailureReason | 'no error' {
  try {
    fn();
    return 'no error';
  } catch (err) {
    if (err instanceof DecryptError) return err.reason;
    throw err;
  }
}
/** Re-encodes a Django value's inner token bytes after `edit`. */
function withInner(stored: string, edit: (token: Buffer) => Buffer, prefix = 'FERNET_V1:'): string {
  const token = Buffer.from(Buffer.from(stored.slice(prefix.length), 'base64url').toString('latin1'), 'base64url');
  const inner = edit(Buffer.from(token)).toString('base64url');
  const padded = inner + '='.repeat((4 - (inner.length % 4)) % 4);
  const outer = Buffer.from(padded, 'latin1').toString('base64url');
  return prefix + outer + '='.repeat((4 - (outer.length % 4)) % 4);
}

const rotating = codec('django-fernet-v1', [
  ['2026q1', NEW_SECRET],
  ['2025q4', v1.secretKey],
]);

describe('decrypt reasons', () => {
  it('not-a-string for non-string values', () => {
    for (const value of [null, undefined, 42, Buffer.from(v1.stored), { stored: v1.stored }]) {
      expect(reasonOf(() => rotating.decrypt(value))).toBe('not-a-string');
    }
  });

  it('wrong-format for plaintext, other formats and empty strings', () => {
    for (const value of ['user@example.com', '', v2.stored, v1.fernetToken, ' ' + v1.stored, 'fernet_v1:abc']) {
      expect(reasonOf(() => rotating.decrypt(value))).toBe('wrong-format');
    }
    const fernet = codec('fernet', [['k', spec.secret]]);
    for (const value of ['hello', v1.stored, 'gAAAA', 'GAAAAAAdwJ6w']) {
      expect(reasonOf(() => fernet.decrypt(value))).toBe('wrong-format');
    }
  });

  it('malformed: trailing data, bad padding, non-canonical base64, whitespace, truncation', () => {
    const padded = djangoVectors.find((v) => v.format === 'django-fernet-v1' && v.stored.endsWith('=='))!;
    expect(rotating.decrypt(padded.stored).plaintext).toBe(padded.plaintext);
    const cases = [
      v1.stored + 'AAAA',
      v1.stored + '=',
      padded.stored.replace(/=+$/, ''),
      padded.stored.replace(/==$/, '='),
      padded.stored + '==',
      v1.stored + '\n',
      v1.stored.slice(0, 30) + ' ' + v1.stored.slice(30),
      v1.stored.slice(0, -8),
      'FERNET_V1:',
      'FERNET_V1:!!!!',
      // standard-alphabet characters in the outer layer
      v1.stored.replace(/[A-Za-z0-9]{4}$/, '++//').replace(/=+$/, ''),
    ];
    for (const value of cases) expect(reasonOf(() => rotating.decrypt(value)), value).toBe('malformed');
  });

  it('malformed: non-canonical inner token, bad version byte, non-block ciphertext, inner trailing data', () => {
    const nonCanonical = (() => {
      // "…DA==" carries 4 trailing bits; "…DB==" decodes to the same bytes with a non-zero remainder.
      const inner = spec.token.replace(/A==$/, 'B==');
      const outer = Buffer.from(inner, 'latin1').toString('base64url');
      return 'FERNET_V1:' + outer + '='.repeat((4 - (outer.length % 4)) % 4);
    })();
    expect(spec.token.endsWith('DA==')).toBe(true);
    expect(reasonOf(() => rotating.decrypt(nonCanonical))).toBe('malformed');
    const badVersion = withInner(v1.stored, (t) => ((t[0] = 0x81), t));
    expect(reasonOf(() => rotating.decrypt(badVersion))).toBe('malformed');
    const oddLength = withInner(v1.stored, (t) => Buffer.concat([t, Buffer.alloc(1)]));
    expect(reasonOf(() => rotating.decrypt(oddLength))).toBe('malformed');
    const fernet = codec('fernet', [['k', spec.secret]]);
    expect(reasonOf(() => fernet.decrypt(spec.token + 'AAAA'))).toBe('malformed');
    expect(reasonOf(() => fernet.decrypt(spec.token.replace('_', '/')))).toBe('malformed');
    expect(reasonOf(() => fernet.decrypt(spec.token.replace(/==$/, '')))).toBe('malformed');
  });

  it('malformed: bad PKCS7 padding under a valid MAC', () => {
    const key = splitFernetKey(Buffer.from(v1.derivedFernetKey, 'base64url'));
    const token = sealFernetToken(key, Buffer.from('0123456789abcdef'), v1.time, Buffer.alloc(16));
    // Replace the last (padding-only) block with garbage and re-sign it: authentic but unpaddable.
    token.fill(0x41, token.length - 48, token.length - 32);
    createHmac('sha256', key.signing).update(token.subarray(0, token.length - 32)).digest().copy(token, token.length - 32);
    const stored = withInner(v1.stored, () => token);
    expect(reasonOf(() => rotating.decrypt(stored))).toBe('malformed');
  });

  it('no-key: fernet/v1 when no key authenticates, v2/gcm when the key id is not configured', () => {
    expect(reasonOf(() => codec('django-fernet-v1', [['x', NEW_SECRET]]).decrypt(v1.stored))).toBe('no-key');
    const tampered = withInner(v1.stored, (t) => ((t[30] = (t[30] as number) ^ 1), t));
    expect(reasonOf(() => rotating.decrypt(tampered))).toBe('no-key');
    expect(reasonOf(() => codec('django-fernet-v2', [['other', NEW_SECRET]]).decrypt(v2.stored))).toBe('no-key');
  });

  it('bad-mac: a v2 value names a configured key that does not authenticate it', () => {
    // Same id, different secret: the deployed key is wrong.
    expect(reasonOf(() => codec('django-fernet-v2', [[v2.keyId!, NEW_SECRET]]).decrypt(v2.stored))).toBe('bad-mac');
    const right = codec('django-fernet-v2', [[v2.keyId!, v2.secretKey]]);
    const tampered = withInner(v2.stored, (t) => ((t[40] = (t[40] as number) ^ 1), t), `FERNET_V2:${v2.keyId}:`);
    expect(reasonOf(() => right.decrypt(tampered))).toBe('bad-mac');
    expect(reasonOf(() => right.decrypt(`FERNET_V2::${v2.stored.split(':')[2]}`))).toBe('malformed');
    expect(reasonOf(() => right.decrypt('FERNET_V2:' + v2.keyId))).toBe('malformed');
  });

  it('expired: only when a TTL is requested', () => {
    const later = codec('django-fernet-v1', [['old', v1.secretKey]], { clock: () => v1.time + 3600 });
    expect(reasonOf(() => later.decrypt(v1.stored, { ttlSeconds: 60 }))).toBe('expired');
    expect(later.decrypt(v1.stored, { ttlSeconds: 3600 }).plaintext).toBe(v1.plaintext);
    expect(later.decrypt(v1.stored).plaintext).toBe(v1.plaintext);
    const earlier = codec('django-fernet-v1', [['old', v1.secretKey]], { clock: () => v1.time - 61 });
    expect(reasonOf(() => earlier.decrypt(v1.stored, { ttlSeconds: 60 }))).toBe('expired');
  });
});

describe('keys, withholding and re-encryption', () => {
  it('tries keys primary-first and reports the key that worked', () => {
    expect(rotating.decrypt(v1.stored).keyId).toBe('2025q4');
    expect(rotating.decrypt(rotating.encrypt('a')).keyId).toBe('2026q1');
    // Two ids for the same secret: whichever is primary wins.
    expect(codec('django-fernet-v1', [['p', v1.secretKey], ['q', v1.secretKey]]).decrypt(v1.stored).keyId).toBe('p');
    expect(codec('django-fernet-v1', [['q', v1.secretKey], ['p', v1.secretKey]]).decrypt(v1.stored).keyId).toBe('q');
  });

  it('withholds keys on request (retirement rehearsal)', () => {
    expect(reasonOf(() => rotating.decrypt(v1.stored, { without: ['2025q4'] }))).toBe('no-key');
    expect(rotating.decrypt(v1.stored, { without: ['2026q1'] }).keyId).toBe('2025q4');
    const keyed = codec('django-fernet-v2', [['n', NEW_SECRET], [v2.keyId!, v2.secretKey]]);
    expect(reasonOf(() => keyed.decrypt(v2.stored, { without: [v2.keyId!] }))).toBe('no-key');
    expect(reasonOf(() => rotating.reencrypt(v1.stored, undefined, { without: ['2025q4'] }))).toBe('no-key');
  });

  it('re-encrypts to the primary keeping the Fernet timestamp, with a fresh IV', () => {
    const out = rotating.reencrypt(v1.stored);
    expect(out).toMatchObject({ fromKeyId: '2025q4', toKeyId: '2026q1', changed: true });
    expect(rotating.decrypt(out.stored)).toEqual({ plaintext: v1.plaintext, keyId: '2026q1', timestamp: v1.time });
  });

  it('re-encrypts byte for byte like the application would (fixed IV)', () => {
    const back = codec('django-fernet-v1', [['seed', v1.secretKey], ['2026q1', NEW_SECRET]], {
      randomBytes: fixedBytes(v1.iv),
      clock: () => 1,
    });
    const underNew = back.encrypt(v1.plaintext, { keyId: '2026q1', timestamp: v1.time });
    expect(back.reencrypt(underNew)).toEqual({ stored: v1.stored, fromKeyId: '2026q1', toKeyId: 'seed', changed: true });
    expect(back.reencrypt(underNew, 'seed').stored).toBe(v1.stored);
  });

  it('leaves a value already under the target key unchanged unless forced', () => {
    const current = rotating.encrypt('x', { timestamp: 1234 });
    expect(rotating.reencrypt(current)).toEqual({ stored: current, fromKeyId: '2026q1', toKeyId: '2026q1', changed: false });
    const forced = rotating.reencrypt(current, '2026q1', { force: true });
    expect(forced.changed).toBe(true);
    expect(forced.stored).not.toBe(current);
    expect(rotating.decrypt(forced.stored).timestamp).toBe(1234);
    // Rollback to the old key.
    expect(rotating.decrypt(rotating.reencrypt(current, '2025q4').stored)).toMatchObject({ keyId: '2025q4', timestamp: 1234 });
  });

  it('refuses to encrypt with a key that is not in the keyring', () => {
    expect(() => rotating.encrypt('x', { keyId: 'nope' })).toThrow(KeyInvalidError);
    expect(() => rotating.reencrypt(v1.stored, 'nope')).toThrow(KeyInvalidError);
  });

  it('re-encryption keeps plaintext bytes that are not UTF-8; decrypt refuses them', () => {
    const key = splitFernetKey(Buffer.from(v1.derivedFernetKey, 'base64url'));
    const bytes = Buffer.from([0xff, 0xfe, 0x00, 0x41]);
    const stored = withInner(v1.stored, () => sealFernetToken(key, bytes, 99, Buffer.alloc(16, 3)));
    expect(reasonOf(() => rotating.decrypt(stored))).toBe('malformed');
    const out = rotating.reencrypt(stored, '2025q4', { force: true });
    const token = Buffer.from(Buffer.from(out.stored.slice(10), 'base64url').toString('latin1'), 'base64url');
    expect(openFernetToken(key, token)).toEqual(bytes);
  });

  it('uses the injected clock for new values', () => {
    const c = codec('fernet', [['k', spec.secret]], { clock: () => 1730800000.9 });
    expect(c.decrypt(c.encrypt('x')).timestamp).toBe(1730800000);
  });
});

describe('key affinity', () => {
  it('reports the right key when values alternate between keys (affinity never changes results)', () => {
    const c = codec('fernet', [
      ['p', generateKey('fernet')],
      ['q', generateKey('fernet')],
      ['r', generateKey('fernet')],
    ]);
    const values = ['q', 'p', 'r', 'r', 'p', 'q', 'q', 'p'].map((keyId) => [keyId, c.encrypt(keyId, { keyId })] as const);
    for (const [keyId, stored] of values) expect(c.decrypt(stored)).toMatchObject({ keyId, plaintext: keyId });
    expect(reasonOf(() => c.decrypt(values[0]![1], { without: ['q'] }))).toBe('no-key');
    expect(c.decrypt(values[1]![1], { without: ['q'] }).keyId).toBe('p');
  });
});
