import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeySourceError, resolveKeys, resolveSecret } from '../../src/index.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pg-rekey-keys-'));
  await writeFile(join(dir, 'good.key'), 's3cret from file\r\n');
  await writeFile(join(dir, 'padded.key'), '  s3cret-from-file\n');
  await writeFile(join(dir, 'trailing-space.key'), 's3cret-from-file \n');
  await writeFile(join(dir, 'empty.key'), ' \n');
  await writeFile(join(dir, 'locked.key'), 'x');
  await chmod(join(dir, 'locked.key'), 0o000);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function failure(ref: string, env: Record<string, string> = {}): Promise<KeySourceError> {
  const err = await resolveSecret(ref, { keyId: 'k9', baseDir: dir, env }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(KeySourceError);
  const e = err as KeySourceError;
  expect(e.keyId).toBe('k9');
  expect(e.code).toBe('KEY_SOURCE');
  expect(e.message).toContain('k9');
  return e;
}

describe('resolveSecret', () => {
  it('reads env: verbatim', async () => {
    expect(await resolveSecret('env:SK', { keyId: 'k', env: { SK: ' a b ' } })).toBe(' a b ');
  });
  it('reports a missing or empty env variable by name', async () => {
    expect((await failure('env:NOPE')).message).toContain('NOPE is not set');
    expect((await failure('env:EMPTY', { EMPTY: '' })).message).toContain('EMPTY is empty');
  });

  it('reads file: relative to baseDir without its trailing line break', async () => {
    expect(await resolveSecret('file:good.key', { keyId: 'k', baseDir: dir })).toBe('s3cret from file');
    expect(await resolveSecret(`file:${join(dir, 'good.key')}`, { keyId: 'k', baseDir: '/' })).toBe('s3cret from file');
  });
  it('refuses a file: or cmd: secret with whitespace around it, never guessing whether the application keeps it', async () => {
    for (const ref of ['file:padded.key', 'file:trailing-space.key', 'cmd:printf " tok\\n"', 'cmd:printf "tok\\t"']) {
      const e = await failure(ref);
      expect(e.message).toContain('whitespace before or after the secret');
      expect(e.message).not.toContain('tok');
      expect(e.message).not.toContain('s3cret');
    }
  });
  it('reports missing, empty and unreadable files', async () => {
    expect((await failure('file:missing.key')).message).toMatch(/cannot read .*missing\.key \(ENOENT\)/);
    expect((await failure('file:empty.key')).message).toContain('is empty');
    if (process.getuid?.() !== 0) {
      expect((await failure('file:locked.key')).message).toContain('EACCES');
    }
    expect((await failure('file:.')).message).toContain('EISDIR');
  });

  it('runs cmd: with /bin/sh in baseDir with the given env, without the trailing line break', async () => {
    const out = await resolveSecret('cmd:printf "%s\\n" "$TOKEN-$(basename "$PWD")"', {
      keyId: 'k',
      baseDir: dir,
      env: { TOKEN: 'tok' },
    });
    expect(out).toBe(`tok-${dir.split('/').pop()}`);
  });
  it('reports a failing command by exit status, never its output or stderr', async () => {
    const fake = 'FAKE-SECRET-do-not-print-0123456789';
    const e = await failure(`cmd:echo ${fake}; echo ${fake}-stderr >&2; exit 3`);
    expect(e.message).toContain('status 3');
    const everything = [e.message, String(e), JSON.stringify(e), String(e.stack), String((e as Error).cause)].join('\n');
    expect(everything).not.toContain('FAKE-SECRET');
    expect(everything).not.toContain('echo');
  });
  it('reports a command killed by a signal, and one that prints nothing', async () => {
    expect((await failure('cmd:kill -9 $$')).message).toContain('SIGKILL');
    expect((await failure('cmd:true')).message).toContain('printed nothing');
  });

  it('refuses literal secrets without echoing them', async () => {
    const e = await failure('my-literal-django-secret');
    expect(e.message).toMatch(/env:.*file:.*cmd:/);
    expect(e.message).not.toContain('my-literal');
    await failure('');
    await failure('ENV:X');
  });

  it('resolveKeys resolves every key, keeping order', async () => {
    const keys = await resolveKeys(
      [
        { id: 'new', secret: 'env:A' },
        { id: 'old', secret: 'file:good.key' },
      ],
      { baseDir: dir, env: { A: 'aaa' } },
    );
    expect(keys).toEqual([
      { id: 'new', secret: 'aaa' },
      { id: 'old', secret: 's3cret from file' },
    ]);
  });
});
