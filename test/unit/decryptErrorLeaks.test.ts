import { describe, expect, it } from 'vitest';
import { createCodecFromKeyring, keyringFromResolved, type Format } from '../../src/index.js';
import { DecryptError, type DecryptFailureReason } from '../../src/errors.js';

const SECRET = 'leak-test-secret-Q7w!e9r$t2y4u6i8o0p';
const OTHER = 'leak-test-other-secret-Z1x3c5v7b9n';
const PLAINTEXT = 'alice.private.address@example.com';
const AES = Buffer.alloc(32, 0x5c).toString('base64');

function ring(format: Format, keys: Array<[string, string]>) {
  return createCodecFromKeyring(format, keyringFromResolved(format, keys.map(([id, secret]) => ({ id, secret }))), {
    clock: () => 1_700_000_000,
  });
}

/** Every 12-character window of `text`. */
function windows(text: string): string[] {
  const out: string[] = [];
  for (let i = 0; i + 12 <= text.length; i += 1) out.push(text.slice(i, i + 12));
  return out;
}

/** The ciphertext parts of a stored value: its base64 body and, for Django formats, the inner token. */
function ciphertexts(stored: string): string[] {
  const body = stored.slice(stored.lastIndexOf(':') + 1);
  const parts = [body];
  if (stored.startsWith('FERNET_')) parts.push(Buffer.from(body, 'base64url').toString('latin1'));
  return parts;
}

function catchDecrypt(fn: () => unknown): DecryptError {
  try {
    fn();
  } catch (err) {
    if (err instanceof DecryptError) return err;
    throw err;
  }
  throw new Error('expected a DecryptError');
}

describe('decrypt errors never carry secrets, plaintexts or ciphertexts', () => {
  const v1 = ring('django-fernet-v1', [['k1', SECRET]]);
  const v2 = ring('django-fernet-v2', [['k2', SECRET]]);
  const gcm = ring('aes-256-gcm', [['k3', AES]]);
  const v1Stored = v1.encrypt(PLAINTEXT);
  const v2Stored = v2.encrypt(PLAINTEXT);
  const gcmStored = gcm.encrypt(PLAINTEXT);

  const cases: Array<[DecryptFailureReason, string, () => unknown, string[]]> = [
    ['not-a-string', 'v1 buffer', () => v1.decrypt(Buffer.from(v1Stored)), [v1Stored]],
    ['wrong-format', 'v1 plaintext', () => v1.decrypt(PLAINTEXT), [v1Stored]],
    ['wrong-format', 'gcm given v1', () => gcm.decrypt(v1Stored), [v1Stored]],
    ['malformed', 'v1 trailing', () => v1.decrypt(v1Stored + 'QUJD'), [v1Stored]],
    ['malformed', 'v2 truncated', () => v2.decrypt(v2Stored.slice(0, -10)), [v2Stored]],
    ['malformed', 'gcm bad version', () => gcm.decrypt('PGRK1:Ag' + gcmStored.slice(8)), [gcmStored]],
    ['no-key', 'v1 unknown key', () => ring('django-fernet-v1', [['k9', OTHER]]).decrypt(v1Stored), [v1Stored]],
    ['no-key', 'v2 unknown key id', () => ring('django-fernet-v2', [['k9', OTHER]]).decrypt(v2Stored), [v2Stored]],
    ['no-key', 'v2 garbage key id', () => v2.decrypt(`FERNET_V2:${PLAINTEXT}:${v2Stored.split(':')[2]}`), [v2Stored]],
    ['bad-mac', 'v2 wrong secret', () => ring('django-fernet-v2', [['k2', OTHER]]).decrypt(v2Stored), [v2Stored]],
    ['bad-mac', 'gcm wrong key', () => ring('aes-256-gcm', [['k3', Buffer.alloc(32, 1).toString('base64')]]).decrypt(gcmStored), [gcmStored]],
    ['expired', 'v1 ttl', () => v1.decrypt(v1Stored, { ttlSeconds: -1 }), [v1Stored]],
  ];

  it('covers every reason class', () => {
    const all: DecryptFailureReason[] = ['not-a-string', 'wrong-format', 'malformed', 'no-key', 'bad-mac', 'expired'];
    expect(new Set(cases.map(([reason]) => reason))).toEqual(new Set(all));
  });

  it.each(cases)('%s (%s)', (reason, _label, fn, storedValues) => {
    const err = catchDecrypt(fn);
    expect(err.reason).toBe(reason);
    expect(err.code).toBe('DECRYPT_FAILED');
    const surfaces = [err.message, String(err), JSON.stringify(err), String(err.stack)];
    const forbidden = [
      SECRET,
      OTHER,
      AES,
      PLAINTEXT,
      ...windows(PLAINTEXT),
      ...windows(SECRET),
      ...storedValues.flatMap(ciphertexts).flatMap(windows),
    ];
    for (const surface of surfaces) {
      for (const bad of forbidden) expect(surface.includes(bad), `${reason} leaks "${bad}"`).toBe(false);
    }
  });
});
