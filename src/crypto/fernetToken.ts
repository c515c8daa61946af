/**
 * Fernet tokens, byte-compatible with pyca/cryptography's Fernet
 * (https://github.com/fernet/spec):
 *
 *   0x80 | timestamp (uint64 BE, seconds) | IV (16) | AES-128-CBC PKCS7 ciphertext | HMAC-SHA256 (32)
 *
 * The HMAC covers everything before it, keyed with the first 16 bytes of the
 * 32-byte Fernet key; the last 16 bytes are the AES key. Functions here work on
 * raw token bytes; text encodings belong to the format handlers.
 */
import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { Aes128Cbc } from './aes128Cbc.js';

/**
 * The two halves of a 32-byte Fernet key, prepared once per key: the HMAC half
 * as a Buffer (no gain from a KeyObject there), the AES half as a KeyObject
 * and the long-lived AES-CBC contexts every value under the key shares
 * (aes128Cbc.ts: about 2.2 µs less per value each way).
 */
export interface FernetKey {
  readonly signing: Buffer;
  readonly encryption: KeyObject;
  readonly cbc: Aes128Cbc;
}

/** Why a token's bytes are structurally unusable (no key needed to tell). */
export type FernetShapeProblem = 'too-short' | 'bad-version' | 'bad-length' | 'timestamp-range';

const VERSION = 0x80;
const HEADER = 1 + 8 + 16;
const MAC = 32;
/** 2^53: larger timestamps cannot round-trip through a JS number, so they are refused. */
const MAX_TIMESTAMP_HIGH = 0x200000;

/** Splits a 32-byte Fernet key into its signing and encryption halves. */
export function splitFernetKey(key32: Buffer): FernetKey {
  if (key32.length !== 32) throw new RangeError('a Fernet key is 32 bytes');
  const encryption = createSecretKey(Buffer.from(key32.subarray(16, 32)));
  return { signing: Buffer.from(key32.subarray(0, 16)), encryption, cbc: new Aes128Cbc(encryption) };
}

/** Encrypts `plaintext` into raw Fernet token bytes with the given timestamp and 16-byte IV. */
export function sealFernetToken(key: FernetKey, plaintext: Uint8Array, timestamp: number, iv: Uint8Array): Buffer {
  const cipherLength = (plaintext.length & ~15) + 16;
  const macStart = HEADER + cipherLength;
  const token = Buffer.allocUnsafe(macStart + MAC);
  token[0] = VERSION;
  token.writeUInt32BE(Math.floor(timestamp / 0x100000000), 1);
  token.writeUInt32BE(timestamp >>> 0, 5);
  token.set(iv.subarray(0, 16), 9);
  token.set(key.cbc.encrypt(plaintext, iv), HEADER);
  const mac = createHmac('sha256', key.signing).update(token.subarray(0, macStart)).digest();
  token.set(mac, macStart);
  return token;
}

/**
 * Checks what can be checked without a key: length, version byte, block-aligned
 * ciphertext, representable timestamp. Returns undefined when the shape is fine.
 */
export function checkFernetShape(token: Buffer): FernetShapeProblem | undefined {
  // The shortest token holds one ciphertext block (PKCS7 always pads).
  if (token.length < HEADER + 16 + MAC) return 'too-short';
  if (token[0] !== VERSION) return 'bad-version';
  if ((token.length - HEADER - MAC) % 16 !== 0) return 'bad-length';
  if (token.readUInt32BE(1) >= MAX_TIMESTAMP_HIGH) return 'timestamp-range';
  return undefined;
}

/**
 * True when `token` starts with the version byte and holds at least one
 * ciphertext block: how a token is told from other bytes whatever its timestamp.
 */
export function hasFernetHeader(token: Buffer): boolean {
  return token.length >= HEADER + 16 + MAC && token[0] === VERSION;
}

/** The token's timestamp (seconds); call only after {@link checkFernetShape}. */
export function fernetTimestamp(token: Buffer): number {
  return token.readUInt32BE(1) * 0x100000000 + token.readUInt32BE(5);
}

/** True when `key` authenticates `token` (constant-time comparison). */
export function verifyFernetMac(key: FernetKey, token: Buffer): boolean {
  const macStart = token.length - MAC;
  const mac = createHmac('sha256', key.signing).update(token.subarray(0, macStart)).digest();
  return timingSafeEqual(mac, token.subarray(macStart));
}

/**
 * Decrypts an authenticated token's ciphertext. Returns undefined on bad PKCS7
 * padding — only reachable with a valid MAC, i.e. the writer itself was broken.
 */
export function openFernetToken(key: FernetKey, token: Buffer): Buffer | undefined {
  return key.cbc.decrypt(token.subarray(HEADER, token.length - MAC), token.subarray(9, HEADER));
}
