import { createCipheriv, createDecipheriv, createSecretKey, randomBytes, randomInt } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Aes128Cbc } from '../../src/crypto/aes128Cbc.js';

/** What Node's own one-object-per-message AES-128-CBC (PKCS7) gives: the reference. */
function referenceEncrypt(key: Buffer, plaintext: Buffer, iv: Buffer): Buffer {
  const cipher = createCipheriv('aes-128-cbc', key, iv);
  return Buffer.concat([cipher.update(plaintext), cipher.final()]);
}

function referenceDecrypt(key: Buffer, ciphertext: Buffer, iv: Buffer): Buffer | undefined {
  try {
    const decipher = createDecipheriv('aes-128-cbc', key, iv);
    return Buffer.concat([decipher.update(ciphertext), decipher.final()]);
  } catch {
    return undefined;
  }
}

describe('Aes128Cbc (long-lived contexts)', () => {
  it('encrypts message after message exactly as a fresh cipher per message does', () => {
    // The encrypting context chains across calls: every message after the
    // first checks the chaining value carried over from the one before.
    const key = randomBytes(16);
    const cbc = new Aes128Cbc(createSecretKey(key));
    for (let n = 0; n < 400; n++) {
      const plaintext = randomBytes(n % 67);
      const iv = randomBytes(16);
      expect(cbc.encrypt(plaintext, iv).equals(referenceEncrypt(key, plaintext, iv)), `message ${n}`).toBe(true);
    }
  });

  it('decrypts what the reference encrypts, interleaved with encryptions on the same instance', () => {
    const key = randomBytes(16);
    const cbc = new Aes128Cbc(createSecretKey(key));
    for (let n = 0; n < 300; n++) {
      const plaintext = randomBytes(randomInt(0, 80));
      const iv = randomBytes(16);
      const ciphertext = referenceEncrypt(key, plaintext, iv);
      expect(cbc.decrypt(ciphertext, iv)?.equals(plaintext), `message ${n}`).toBe(true);
      // An encryption between two decryptions must not disturb either context.
      const other = randomBytes(randomInt(0, 40));
      expect(cbc.encrypt(other, iv).equals(referenceEncrypt(key, other, iv))).toBe(true);
    }
  });

  it('keeps instances of two keys apart', () => {
    const [k1, k2] = [randomBytes(16), randomBytes(16)];
    const [a, b] = [new Aes128Cbc(createSecretKey(k1)), new Aes128Cbc(createSecretKey(k2))];
    const iv = randomBytes(16);
    const p = Buffer.from('user42@example.com');
    const fromA = a.encrypt(p, iv);
    expect(b.encrypt(p, iv).equals(referenceEncrypt(k2, p, iv))).toBe(true);
    expect(a.decrypt(fromA, iv)?.equals(p)).toBe(true);
    expect(b.decrypt(fromA, iv)?.equals(p) ?? false).toBe(false);
  });

  it('refuses what the reference refuses: lengths not whole blocks, empty input, bad PKCS7 padding', () => {
    const key = randomBytes(16);
    const cbc = new Aes128Cbc(createSecretKey(key));
    const iv = randomBytes(16);
    expect(cbc.decrypt(Buffer.alloc(0), iv)).toBeUndefined();
    expect(cbc.decrypt(randomBytes(17), iv)).toBeUndefined();
    // Random blocks: the padding check must agree with OpenSSL's on every one.
    let refused = 0;
    for (let n = 0; n < 2000; n++) {
      const ciphertext = randomBytes(16 * randomInt(1, 4));
      const ours = cbc.decrypt(ciphertext, iv);
      const reference = referenceDecrypt(key, ciphertext, iv);
      expect(ours === undefined, `block ${n}`).toBe(reference === undefined);
      if (ours && reference) expect(ours.equals(reference)).toBe(true);
      if (!ours) refused++;
    }
    expect(refused).toBeGreaterThan(1500);
  });

  it('refuses a last block padded with a byte above 16 or with unequal padding bytes', () => {
    const key = randomBytes(16);
    const cbc = new Aes128Cbc(createSecretKey(key));
    const iv = Buffer.alloc(16);
    // Encrypt chosen "padded" blocks with padding disabled, so the plaintext padding is exactly what we say.
    const raw = (block: Buffer) => createCipheriv('aes-128-cbc', key, iv).setAutoPadding(false).update(block);
    expect(cbc.decrypt(raw(Buffer.alloc(16, 17)), iv)).toBeUndefined();
    expect(cbc.decrypt(raw(Buffer.alloc(16, 0)), iv)).toBeUndefined();
    expect(cbc.decrypt(raw(Buffer.from([...Array(13).fill(65), 3, 2, 3])), iv)).toBeUndefined();
    expect(cbc.decrypt(raw(Buffer.from([...Array(13).fill(65), 3, 3, 3])), iv)?.toString()).toBe('A'.repeat(13));
    expect(cbc.decrypt(raw(Buffer.alloc(16, 16)), iv)?.length).toBe(0);
  });
});
