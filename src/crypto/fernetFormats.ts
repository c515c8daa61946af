/**
 * The three Fernet-based formats:
 *  - `fernet`: the token itself, as Python's Fernet/MultiFernet write it;
 *  - `django-fernet-v1`: `FERNET_V1:` + base64url(token text), key from SECRET_KEY;
 *  - `django-fernet-v2`: `FERNET_V2:<keyId>:` + base64url(token text), key from
 *    SECRET_KEY and keyId (keyId `default` uses the v1 derivation).
 * Both base64 layers are `=`-padded and must be canonical.
 */
import { KeyInvalidError } from '../errors.js';
import {
  checkFernetShape,
  fernetTimestamp,
  hasFernetHeader,
  openFernetToken,
  sealFernetToken,
  splitFernetKey,
  verifyFernetMac,
  type FernetKey,
  type FernetShapeProblem,
} from './fernetToken.js';
import type { Format } from './formats.js';
import { decryptFailure, type FormatHandler, type OpenedValue } from './formatHandler.js';
import { deriveDjangoFernetKey, deriveDjangoFernetKeyAsync } from './kdf.js';
import { decodeBase64UrlStrict, encodeBase64Url } from './strictBase64.js';

const SHAPE_PROBLEMS: Record<FernetShapeProblem, string> = {
  'too-short': 'the Fernet token is truncated',
  'bad-version': 'the Fernet token has an unknown version byte',
  'bad-length': 'the Fernet ciphertext is not a whole number of AES blocks',
  'timestamp-range': 'the Fernet timestamp is out of range',
};

function decodeToken(format: Format, text: string, layer: string): Buffer {
  const token = decodeBase64UrlStrict(text, 'required');
  if (token === undefined) {
    throw decryptFailure('malformed', format, `${layer} is not canonical padded url-safe base64`);
  }
  const problem = checkFernetShape(token);
  if (problem !== undefined) throw decryptFailure('malformed', format, SHAPE_PROBLEMS[problem]);
  return token;
}

/** Decodes the outer base64url layer of a Django value into the inner token bytes. */
function decodeDjangoBody(format: Format, body: string): Buffer {
  const inner = decodeBase64UrlStrict(body, 'required');
  if (inner === undefined) {
    throw decryptFailure('malformed', format, 'the outer layer is not canonical padded url-safe base64');
  }
  // The inner layer is ASCII text; latin1 maps bytes 1:1 so stray bytes fail the canonical check.
  return decodeToken(format, inner.toString('latin1'), 'the inner Fernet token');
}

function openToken(format: Format, key: FernetKey, token: Buffer): OpenedValue | undefined {
  if (!verifyFernetMac(key, token)) return undefined;
  const plaintext = openFernetToken(key, token);
  if (plaintext === undefined) {
    throw decryptFailure('malformed', format, 'authenticated, but its PKCS7 padding is invalid');
  }
  return { plaintext, timestamp: fernetTimestamp(token) };
}

function djangoSecretCheck(format: Format, keyId: string, secret: string): void {
  if (secret.length === 0) {
    throw new KeyInvalidError(keyId, `key ${keyId}: a ${format} key is a Django SECRET_KEY and must not be empty`);
  }
}

/**
 * True when `value` is a Fernet token by its text. Tokens a clock in seconds
 * writes start with "gAAAAA" (the version byte, then a timestamp below 2^36),
 * the fast path. A later timestamp — a writer that passed milliseconds, as
 * `encrypt_at_time(data, int(time.time() * 1000))` does — changes those
 * characters, yet pyca/cryptography reads the token (it checks time only under
 * a TTL), so text that decodes canonically to bytes with a Fernet header is a
 * token too; plaintext does not (100+ characters of base64 starting "g").
 */
export function isFernetTokenText(value: string): boolean {
  if (value.startsWith('gAAAAA')) return true;
  if (!value.startsWith('g')) return false;
  const bytes = decodeBase64UrlStrict(value, 'required');
  return bytes !== undefined && hasFernetHeader(bytes);
}

/** `fernet`: raw Fernet tokens; the key is a 32-byte url-safe base64 Fernet key. */
export const fernetHandler: FormatHandler = {
  format: 'fernet',
  keyed: false,
  validateKey(keyId, secret) {
    const key = decodeBase64UrlStrict(secret, 'required');
    if (key === undefined || key.length !== 32) {
      throw new KeyInvalidError(
        keyId,
        `key ${keyId}: a fernet key must be 32 bytes in padded url-safe base64 (44 characters, as Fernet.generate_key() writes it)`,
      );
    }
  },
  async prewarmKey() {},
  prepareKey(keyId, secret) {
    this.validateKey(keyId, secret);
    return splitFernetKey(decodeBase64UrlStrict(secret, 'required') as Buffer);
  },
  seal(material, _keyId, plaintext, timestamp, random) {
    return encodeBase64Url(sealFernetToken(material as FernetKey, plaintext, timestamp, random(16)), true);
  },
  parse(value) {
    // Anything else is not a Fernet token at all (plaintext, another format).
    if (!isFernetTokenText(value)) throw decryptFailure('wrong-format', 'fernet', 'not a Fernet token');
    return { keyId: undefined, data: decodeToken('fernet', value, 'the token') };
  },
  open(material, parsed) {
    return openToken('fernet', material as FernetKey, parsed.data);
  },
};

const V1_PREFIX = 'FERNET_V1:';

/** `django-fernet-v1`: the seed application's v1 values; the key is its SECRET_KEY. */
export const djangoFernetV1Handler: FormatHandler = {
  format: 'django-fernet-v1',
  keyed: false,
  validateKey(keyId, secret) {
    djangoSecretCheck('django-fernet-v1', keyId, secret);
  },
  async prewarmKey(keyId, secret) {
    this.validateKey(keyId, secret);
    await deriveDjangoFernetKeyAsync(secret);
  },
  prepareKey(keyId, secret) {
    this.validateKey(keyId, secret);
    return splitFernetKey(deriveDjangoFernetKey(secret));
  },
  seal(material, _keyId, plaintext, timestamp, random) {
    const token = encodeBase64Url(sealFernetToken(material as FernetKey, plaintext, timestamp, random(16)), true);
    return V1_PREFIX + encodeBase64Url(Buffer.from(token, 'latin1'), true);
  },
  parse(value) {
    if (!value.startsWith(V1_PREFIX)) throw decryptFailure('wrong-format', 'django-fernet-v1', `no ${V1_PREFIX} prefix`);
    return { keyId: undefined, data: decodeDjangoBody('django-fernet-v1', value.slice(V1_PREFIX.length)) };
  },
  open(material, parsed) {
    return openToken('django-fernet-v1', material as FernetKey, parsed.data);
  },
};

const V2_PREFIX = 'FERNET_V2:';

/** `django-fernet-v2`: values naming their key id; the key is SECRET_KEY, derived per id. */
export const djangoFernetV2Handler: FormatHandler = {
  format: 'django-fernet-v2',
  keyed: true,
  validateKey(keyId, secret) {
    if (keyId.includes(':')) {
      throw new KeyInvalidError(keyId, `key ${keyId}: a django-fernet-v2 key id cannot contain ':' (it is written into each value)`);
    }
    djangoSecretCheck('django-fernet-v2', keyId, secret);
  },
  async prewarmKey(keyId, secret) {
    this.validateKey(keyId, secret);
    await deriveDjangoFernetKeyAsync(secret, keyId);
  },
  prepareKey(keyId, secret) {
    this.validateKey(keyId, secret);
    return splitFernetKey(deriveDjangoFernetKey(secret, keyId));
  },
  seal(material, keyId, plaintext, timestamp, random) {
    const token = encodeBase64Url(sealFernetToken(material as FernetKey, plaintext, timestamp, random(16)), true);
    return `${V2_PREFIX}${keyId}:${encodeBase64Url(Buffer.from(token, 'latin1'), true)}`;
  },
  parse(value) {
    if (!value.startsWith(V2_PREFIX)) throw decryptFailure('wrong-format', 'django-fernet-v2', `no ${V2_PREFIX} prefix`);
    const separator = value.indexOf(':', V2_PREFIX.length);
    if (separator <= V2_PREFIX.length) {
      throw decryptFailure('malformed', 'django-fernet-v2', 'no key id after the prefix');
    }
    return {
      keyId: value.slice(V2_PREFIX.length, separator),
      data: decodeDjangoBody('django-fernet-v2', value.slice(separator + 1)),
    };
  },
  open(material, parsed) {
    return openToken('django-fernet-v2', material as FernetKey, parsed.data);
  },
};
