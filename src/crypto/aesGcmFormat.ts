/**
 * `aes-256-gcm`: pg-rekey's own envelope.
 *
 *   stored = "PGRK1:" + base64url-without-padding(body)
 *   body   = [version 0x01][keyId length n, 1..255][keyId, n bytes UTF-8]
 *            [nonce, 12 bytes][ciphertext, same length as the plaintext][GCM tag, 16 bytes]
 *
 * The header (version, length, keyId) is GCM additional authenticated data, so
 * editing the key id of a value makes it fail authentication instead of being
 * silently attributed to another key. Nonces are random: 96 random bits stay
 * collision-safe for far more than 2^32 values per key would need, and a rotation
 * re-keys long before that. The key is 32 random bytes in base64 (either alphabet).
 */
import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto';
import { KeyInvalidError } from '../errors.js';
import { decryptFailure, type FormatHandler } from './formatHandler.js';
import { decodeBase64AnyStrict, decodeBase64UrlStrict, encodeBase64Url } from './strictBase64.js';

const PREFIX = 'PGRK1:';
const VERSION = 0x01;
const NONCE = 12;
const TAG = 16;
// ignoreBOM: a key id is the header's bytes as they are; a leading BOM is not stripped into another id.
const utf8Strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

interface AesKey {
  /** A KeyObject: createCipheriv skips re-importing the key for every value. */
  readonly key: KeyObject;
  /** The AAD header of values under this key, built once per key. */
  readonly header: Buffer;
}

function headerFor(keyId: string): Buffer {
  const id = Buffer.from(keyId, 'utf8');
  const header = Buffer.allocUnsafe(2 + id.length);
  header[0] = VERSION;
  header[1] = id.length;
  id.copy(header, 2);
  return header;
}

/** The `aes-256-gcm` format handler. */
export const aesGcmHandler: FormatHandler = {
  format: 'aes-256-gcm',
  keyed: true,
  validateKey(keyId, secret) {
    const idLength = Buffer.byteLength(keyId, 'utf8');
    if (idLength === 0 || idLength > 255) {
      throw new KeyInvalidError(keyId, `key ${keyId}: an aes-256-gcm key id must be 1 to 255 bytes of UTF-8`);
    }
    const key = decodeBase64AnyStrict(secret);
    if (key === undefined || key.length !== 32) {
      throw new KeyInvalidError(
        keyId,
        `key ${keyId}: an aes-256-gcm key must be exactly 32 bytes in canonical base64 (standard or url-safe)`,
      );
    }
  },
  async prewarmKey() {},
  prepareKey(keyId, secret): AesKey {
    this.validateKey(keyId, secret);
    return { key: createSecretKey(decodeBase64AnyStrict(secret) as Buffer), header: headerFor(keyId) };
  },
  seal(material, _keyId, plaintext, _timestamp, random) {
    const { key, header } = material as AesKey;
    const body = Buffer.allocUnsafe(header.length + NONCE + plaintext.length + TAG);
    header.copy(body, 0);
    const nonce = body.subarray(header.length, header.length + NONCE);
    nonce.set(random(NONCE).subarray(0, NONCE));
    const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG });
    cipher.setAAD(header);
    const head = cipher.update(plaintext);
    let at = header.length + NONCE;
    body.set(head, at);
    at += head.length;
    const tail = cipher.final();
    body.set(tail, at);
    body.set(cipher.getAuthTag(), at + tail.length);
    return PREFIX + encodeBase64Url(body, false);
  },
  parse(value) {
    if (!value.startsWith(PREFIX)) throw decryptFailure('wrong-format', 'aes-256-gcm', `no ${PREFIX} prefix`);
    const body = decodeBase64UrlStrict(value.slice(PREFIX.length), 'forbidden');
    if (body === undefined) {
      throw decryptFailure('malformed', 'aes-256-gcm', 'the envelope is not canonical unpadded url-safe base64');
    }
    if (body.length < 2) throw decryptFailure('malformed', 'aes-256-gcm', 'the envelope is truncated');
    if (body[0] !== VERSION) throw decryptFailure('malformed', 'aes-256-gcm', 'the envelope has an unknown version byte');
    const idLength = body[1] as number;
    if (idLength === 0) throw decryptFailure('malformed', 'aes-256-gcm', 'the envelope has an empty key id');
    if (body.length < 2 + idLength + NONCE + TAG) {
      throw decryptFailure('malformed', 'aes-256-gcm', 'the envelope is truncated');
    }
    let keyId: string;
    try {
      keyId = utf8Strict.decode(body.subarray(2, 2 + idLength));
    } catch {
      throw decryptFailure('malformed', 'aes-256-gcm', 'the envelope key id is not UTF-8');
    }
    return { keyId, data: body };
  },
  open(material, parsed) {
    const { key } = material as AesKey;
    const body = parsed.data;
    const headerLength = 2 + (body[1] as number);
    const nonce = body.subarray(headerLength, headerLength + NONCE);
    const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG });
    // The AAD is the header as stored, so a tampered key id cannot authenticate.
    decipher.setAAD(body.subarray(0, headerLength));
    decipher.setAuthTag(body.subarray(body.length - TAG));
    try {
      const head = decipher.update(body.subarray(headerLength + NONCE, body.length - TAG));
      const tail = decipher.final();
      return { plaintext: tail.length === 0 ? head : Buffer.concat([head, tail]), timestamp: undefined };
    } catch {
      return undefined;
    }
  },
};
