/** Fresh key material for each format (`pg-rekey keys generate`). */
import { randomBytes as cryptoRandomBytes } from 'node:crypto';
import type { Format } from './formats.js';
import { getFormatHandler } from './getFormatHandler.js';

/** Django's get_random_secret_key() alphabet (50 characters). */
export const DJANGO_SECRET_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789!@#$%^&*(-_=+)';

/**
 * A new secret for `format`: fernet → padded url-safe base64 of 32 random bytes
 * (as Fernet.generate_key()); django formats → 50 characters from Django's
 * alphabet (as get_random_secret_key()); aes-256-gcm → base64 of 32 random bytes.
 */
export function generateKey(format: Format, randomBytes: (size: number) => Uint8Array = cryptoRandomBytes): string {
  // ConfigError for an unknown format: JavaScript callers have no type to stop them,
  // and falling through the switch would hand back `undefined` as a key.
  getFormatHandler(format);
  switch (format) {
    case 'fernet':
      return Buffer.from(randomBytes(32).subarray(0, 32)).toString('base64url') + '=';
    case 'aes-256-gcm':
      return Buffer.from(randomBytes(32).subarray(0, 32)).toString('base64');
    case 'django-fernet-v1':
    case 'django-fernet-v2':
      return djangoSecret(randomBytes);
  }
}

function djangoSecret(randomBytes: (size: number) => Uint8Array): string {
  let out = '';
  while (out.length < 50) {
    for (const byte of randomBytes(64)) {
      // Rejection sampling: 250 = 5 × 50, so bytes below it map uniformly.
      if (byte < 250 && out.length < 50) out += DJANGO_SECRET_ALPHABET[byte % 50];
    }
  }
  return out;
}
