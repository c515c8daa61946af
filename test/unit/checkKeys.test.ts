import { describe, expect, it } from 'vitest';
import { checkKeys, fingerprintSecret, generateKey, KeyInvalidError, KeySourceError } from '../../src/index.js';

describe('checkKeys', () => {
  it('round-trips every key in every target format and reports fingerprints and roles', async () => {
    const env = { NEW: generateKey('aes-256-gcm'), OLD: generateKey('aes-256-gcm') };
    const report = await checkKeys(
      {
        baseDir: '/',
        keys: [
          { id: 'new', secret: 'env:NEW' },
          { id: 'old', secret: 'env:OLD' },
        ],
        targets: [{ format: 'aes-256-gcm' }, { format: 'django-fernet-v1' }, { format: 'aes-256-gcm' }],
      },
      { env },
    );
    expect(report).toEqual({
      formats: ['aes-256-gcm', 'django-fernet-v1'],
      keys: [
        { id: 'new', fingerprint: fingerprintSecret(env.NEW), role: 'primary' },
        { id: 'old', fingerprint: fingerprintSecret(env.OLD), role: 'decrypt-only' },
      ],
    });
  });

  it('fails on an unresolvable key or one invalid for a target format', async () => {
    const keys = [{ id: 'k', secret: 'env:K' }];
    await expect(checkKeys({ baseDir: '/', keys, targets: [] }, { env: {} })).rejects.toBeInstanceOf(KeySourceError);
    await expect(
      checkKeys({ baseDir: '/', keys, targets: [{ format: 'fernet' }] }, { env: { K: 'not-a-fernet-key' } }),
    ).rejects.toBeInstanceOf(KeyInvalidError);
  });
});
