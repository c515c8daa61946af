/**
 * Cross-checks against pyca/cryptography when it is installed: Python must read
 * what we write (Fernet/MultiFernet, the Django wrappers, our AES-GCM envelope)
 * and agree on preserved timestamps. Skipped when python3 or cryptography is absent.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { createCodecFromKeyring, deriveDjangoFernetKey, generateKey, keyringFromResolved } from '../../src/index.js';

const hasPython = spawnSync('python3', ['-c', 'import cryptography'], { stdio: 'ignore' }).status === 0;

const SCRIPT = String.raw`
import base64, json, sys
from cryptography.fernet import Fernet, MultiFernet
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
job = json.load(sys.stdin)
out = []
for case in job:
    kind, stored = case["kind"], case["stored"]
    if kind == "fernet":
        f = MultiFernet([Fernet(k) for k in case["keys"]])
        token = stored.encode()
    elif kind == "django":
        f = MultiFernet([Fernet(k) for k in case["keys"]])
        token = base64.urlsafe_b64decode(stored.split(":")[-1])
    else:
        body = base64.urlsafe_b64decode(stored[len("PGRK1:"):] + "=" * (-len(stored[6:]) % 4))
        n = 2 + body[1]
        key = base64.b64decode(case["keys"][0])
        out.append({"plaintext": AESGCM(key).decrypt(body[n:n+12], body[n+12:], body[:n]).decode(), "timestamp": None})
        continue
    out.append({"plaintext": f.decrypt(token).decode(), "timestamp": f.extract_timestamp(token)})
print(json.dumps(out))
`;

function python(cases: unknown[]): Array<{ plaintext: string; timestamp: number | null }> {
  const run = spawnSync('python3', ['-c', SCRIPT], { input: JSON.stringify(cases), encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`python failed: ${run.stderr}`);
  return JSON.parse(run.stdout) as Array<{ plaintext: string; timestamp: number | null }>;
}

const texts = ['', 'user@example.com', 'ünïcødé ✓ 𝄞', 'x'.repeat(33)];

describe.skipIf(!hasPython)('pyca/cryptography reads what we write', () => {
  it('fernet: MultiFernet decrypts our tokens under each key, timestamps agree after reencrypt', () => {
    const k1 = generateKey('fernet');
    const k2 = generateKey('fernet');
    const codec = createCodecFromKeyring('fernet', keyringFromResolved('fernet', [{ id: 'a', secret: k1 }, { id: 'b', secret: k2 }]));
    const stored = texts.flatMap((t) => [codec.encrypt(t, { keyId: 'b', timestamp: 1600000000 }), codec.encrypt(t)]);
    const rotated = stored.map((s) => codec.reencrypt(s).stored);
    const results = python([...stored, ...rotated].map((s) => ({ kind: 'fernet', stored: s, keys: [k1, k2] })));
    const again = python(rotated.map((s) => ({ kind: 'fernet', stored: s, keys: [k1] })));
    expect(results.map((r) => r.plaintext)).toEqual([...texts.flatMap((t) => [t, t]), ...texts.flatMap((t) => [t, t])]);
    expect(again.map((r) => r.timestamp)).toEqual(results.slice(0, stored.length).map((r) => r.timestamp));
    expect(results[0]!.timestamp).toBe(1600000000);
  });

  it('django-fernet-v1/v2: Fernet with the derived key decrypts the inner token', () => {
    for (const format of ['django-fernet-v1', 'django-fernet-v2'] as const) {
      const secret = generateKey(format);
      const id = format === 'django-fernet-v1' ? 'k' : 'key_2026';
      const codec = createCodecFromKeyring(format, keyringFromResolved(format, [{ id, secret }]));
      const derived = deriveDjangoFernetKey(secret, format === 'django-fernet-v2' ? id : undefined);
      const fernetKey = derived.toString('base64url') + '=';
      const results = python(texts.map((t) => ({ kind: 'django', stored: codec.encrypt(t), keys: [fernetKey] })));
      expect(results.map((r) => r.plaintext)).toEqual(texts);
    }
  });

  it('aes-256-gcm: AESGCM opens our envelope with the header as AAD', () => {
    const key = generateKey('aes-256-gcm');
    const codec = createCodecFromKeyring('aes-256-gcm', keyringFromResolved('aes-256-gcm', [{ id: 'g1', secret: key }]));
    const results = python(texts.map((t) => ({ kind: 'gcm', stored: codec.encrypt(t), keys: [key] })));
    expect(results.map((r) => r.plaintext)).toEqual(texts);
  });
});
