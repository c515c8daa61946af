import { describe, expect, it } from 'vitest';
import { createCodecFromKeyring, keyringFromResolved } from '../../src/index.js';
import { DecryptError, KeyInvalidError } from '../../src/errors.js';
import { fixedBytes } from './cryptoVectors.js';

const KEY_A = Buffer.alloc(32, 0xa1).toString('base64');
const KEY_B = Buffer.alloc(32, 0xb2).toString('base64url');
const keyring = keyringFromResolved('aes-256-gcm', [
  { id: 'a', secret: KEY_A },
  { id: 'b', secret: KEY_B },
]);
const codec = createCodecFromKeyring('aes-256-gcm', keyring, { randomBytes: fixedBytes('000102030405060708090a0b') });

function body(stored: string): Buffer {
  return Buffer.from(stored.slice('PGRK1:'.length), 'base64url');
}
function restore(buf: Buffer): string {
  return 'PGRK1:' + buf.toString('base64url');
}
function reason(stored: unknown): string {
  try {
    codec.decrypt(stored);
    return 'no error';
  } catch (err) {
    return err instanceof DecryptError ? err.reason : String(err);
  }
}

describe('aes-256-gcm envelope', () => {
  it('has the documented layout: version, key id, nonce, ciphertext, tag', () => {
    const stored = codec.encrypt('hello');
    const b = body(stored);
    expect(stored.startsWith('PGRK1:')).toBe(true);
    expect(stored).not.toContain('=');
    expect(b[0]).toBe(1);
    expect(b[1]).toBe(1);
    expect(b.subarray(2, 3).toString()).toBe('a');
    expect(b.subarray(3, 15).toString('hex')).toBe('000102030405060708090a0b');
    expect(b.length).toBe(3 + 12 + 5 + 16);
  });

  it('is deterministic for a fixed nonce and matches an independent node:crypto computation', async () => {
    const { createCipheriv } = await import('node:crypto');
    const nonce = Buffer.from('000102030405060708090a0b', 'hex');
    const cipher = createCipheriv('aes-256-gcm', Buffer.alloc(32, 0xa1), nonce);
    cipher.setAAD(Buffer.from([1, 1, 0x61]));
    const ct = Buffer.concat([cipher.update('hello'), cipher.final()]);
    const expected = Buffer.concat([Buffer.from([1, 1, 0x61]), nonce, ct, cipher.getAuthTag()]);
    expect(codec.encrypt('hello')).toBe(restore(expected));
  });

  it('round-trips under each key, reporting the key id; no timestamp', () => {
    for (const keyId of ['a', 'b']) {
      for (const text of ['', 'x', 'user@example.com', 'ünïcødé ✓ 𝄞', 'z'.repeat(1000)]) {
        expect(codec.decrypt(codec.encrypt(text, { keyId }))).toEqual({ plaintext: text, keyId });
      }
    }
  });

  it('rejects a tampered key id (the header is authenticated)', () => {
    const b = body(codec.encrypt('hello', { keyId: 'a' }));
    b[2] = 0x62; // 'a' -> 'b', a configured key
    expect(reason(restore(b))).toBe('bad-mac');
  });

  it('rejects a tampered tag, ciphertext or nonce with bad-mac', () => {
    for (const at of [-1, -17, 5]) {
      const b = body(codec.encrypt('hello'));
      const i = at < 0 ? b.length + at : at;
      b[i] = (b[i] as number) ^ 1;
      expect(reason(restore(b))).toBe('bad-mac');
    }
  });

  it('reports an unknown key id as no-key', () => {
    const other = createCodecFromKeyring('aes-256-gcm', keyringFromResolved('aes-256-gcm', [{ id: 'zz', secret: KEY_A }]));
    expect(reason(other.encrypt('hello'))).toBe('no-key');
  });

  it('decodes strictly: padding, trailing bits, truncation, version', () => {
    const good = codec.encrypt('hello!');
    expect(reason(good)).toBe('no error');
    expect(reason(good + '=')).toBe('malformed');
    // A canonical extra character appends a byte: the envelope has no length field, the tag catches it.
    expect(reason(good + 'AA')).toBe('bad-mac');
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    expect(good.slice('PGRK1:'.length).length % 4).toBe(2);
    const last = alphabet.indexOf(good.at(-1)!);
    expect(reason(good.slice(0, -1) + alphabet[last | 1])).toBe('malformed'); // non-zero trailing bits
    expect(reason(' ' + good)).toBe('wrong-format');
    expect(reason(good + '\n')).toBe('malformed');
    expect(reason(good.slice(0, 20))).toBe('malformed');
    expect(reason('PGRK1:')).toBe('malformed');
    const b = body(good);
    b[0] = 2;
    expect(reason(restore(b))).toBe('malformed');
    const noId = Buffer.concat([Buffer.from([1, 0]), Buffer.alloc(40)]);
    expect(reason(restore(noId))).toBe('malformed');
  });

  it('refuses keys that are not exactly 32 bytes of canonical base64', () => {
    for (const secret of [
      Buffer.alloc(31).toString('base64'),
      Buffer.alloc(33).toString('base64'),
      'not base64 at all',
      Buffer.alloc(32, 0xfb).toString('base64').replace('+', '-'), // mixed alphabets
    ]) {
      expect(() => keyringFromResolved('aes-256-gcm', [{ id: 'k', secret }])).toThrow(KeyInvalidError);
    }
    // Both alphabets, padded or not, are accepted for the same 32 bytes.
    const raw = Buffer.alloc(32, 0xfb);
    for (const secret of [raw.toString('base64'), raw.toString('base64url'), raw.toString('base64').replace(/=+$/, '')]) {
      expect(keyringFromResolved('aes-256-gcm', [{ id: 'k', secret }]).has('k')).toBe(true);
    }
  });
});

describe('aes-256-gcm key id in the header', () => {
  it('is read byte for byte: a leading BOM names another, unconfigured key (no-key), not g1', () => {
    const codec = createCodecFromKeyring('aes-256-gcm', keyringFromResolved('aes-256-gcm', [{ id: 'g1', secret: Buffer.alloc(32, 7).toString('base64') }]));
    const body = Buffer.from(codec.encrypt('x').slice('PGRK1:'.length), 'base64url');
    // Version 1, a 5-byte key id "\uFEFFg1" (BOM + g1), then g1's nonce, ciphertext and tag.
    const forged = Buffer.concat([Buffer.from([1, 5, 0xef, 0xbb, 0xbf]), body.subarray(2)]);
    let err: unknown;
    try {
      codec.decrypt(`PGRK1:${forged.toString('base64url')}`);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DecryptError);
    expect((err as DecryptError).reason).toBe('no-key');
  });
});
