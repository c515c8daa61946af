/**
 * `keys generate` and `keys check` as a DBA runs them: the built CLI as a
 * subprocess, its stdout, stderr and exit codes, and no secret in any output.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';

const FERNET_KEY = 'cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=';
const DJANGO_SECRET = 'django-insecure-7^x#r0tation-old-key-0001!vbn@q';
const LEAKY = 'do-not-print-me-0123456789abcdef';
let dir: string;

async function writeConfig(config: unknown): Promise<void> {
  await writeFile(path.join(dir, 'pg-rekey.config.json'), JSON.stringify(config));
}
const target = (format: string) => [{ table: 'public.people', columns: ['email'], format }];
const check = (env: Record<string, string> = {}) => runCli(['keys', 'check'], { cwd: dir, env });

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'pg-rekey-keys-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('pg-rekey keys generate', () => {
  it('prints only a new key, valid for the format, different every time', async () => {
    const fernet = await runCli(['keys', 'generate', '--format', 'fernet']);
    expect(fernet.code).toBe(0);
    expect(fernet.stderr).toBe('');
    expect(fernet.stdout).toMatch(/^[A-Za-z0-9_-]{43}=\n$/);
    expect(Buffer.from(fernet.stdout.trim(), 'base64url')).toHaveLength(32);
    const django = await runCli(['keys', 'generate', '--format', 'django-fernet-v1']);
    expect(django.stdout.trim().length).toBeGreaterThanOrEqual(50);
    const aes = await runCli(['keys', 'generate', '--format', 'aes-256-gcm']);
    expect(Buffer.from(aes.stdout.trim(), 'base64')).toHaveLength(32);
    const again = await runCli(['keys', 'generate', '--format', 'fernet']);
    expect(again.stdout).not.toBe(fernet.stdout);
  });

  it('with --json prints one JSON document with the key, like every other command', async () => {
    const r = await runCli(['keys', 'generate', '--format', 'fernet', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const doc = JSON.parse(r.stdout) as { format: string; key: string };
    expect(doc.format).toBe('fernet');
    expect(Buffer.from(doc.key, 'base64url')).toHaveLength(32);
  });

  it('a generated key passes keys check', async () => {
    const key = (await runCli(['keys', 'generate', '--format', 'fernet'])).stdout.trim();
    await writeConfig({ keys: [{ id: 'k1', secret: 'env:K1' }], targets: target('fernet') });
    const result = await check({ K1: key });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).not.toContain(key);
  });

  it('refuses an unknown format with exit 2', async () => {
    const result = await runCli(['keys', 'generate', '--format', 'rot13']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/Invalid values|Choices/);
  });

  it('refuses --format given twice with exit 2 and prints no key (a pipe into a secret store must not store "undefined")', async () => {
    for (const formats of [['fernet', 'aes-256-gcm'], ['django-fernet-v1', 'django-fernet-v1']]) {
      const result = await runCli(['keys', 'generate', ...formats.flatMap((f) => ['--format', f])]);
      expect(result.code, result.stdout).toBe(2);
      expect(result.stdout).toBe('');
      expect(result.stderr).toContain('--format is given more than once');
    }
  });
});

describe('pg-rekey keys check', () => {
  it('prints id, fingerprint and role of every key and exits 0', async () => {
    await writeConfig({
      keys: [
        { id: '2026q1', secret: 'env:NEW' },
        { id: '2025q4', secret: 'env:OLD' },
      ],
      targets: target('django-fernet-v1'),
    });
    const result = await check({ NEW: `${DJANGO_SECRET}-new`, OLD: DJANGO_SECRET });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/2026q1\s+[0-9a-f]{32}\s+primary/);
    expect(result.stdout).toMatch(/2025q4\s+[0-9a-f]{32}\s+decrypt-only/);
    expect(result.stdout).toContain('round-trip ok in django-fernet-v1');
    const json = JSON.parse((await runCli(['keys', 'check', '--json'], { cwd: dir, env: { NEW: 'a', OLD: 'b' } })).stdout);
    expect(json.keys.map((k: { role: string }) => k.role)).toEqual(['primary', 'decrypt-only']);
  });

  // Each bad key: exit 2, a message naming the key and the problem, and the secret nowhere.
  const cases: { name: string; config: unknown; env?: Record<string, string>; message: RegExp; setup?: () => Promise<void> }[] = [
    { name: 'a missing env var', config: { keys: [{ id: 'k1', secret: 'env:NOPE' }], targets: target('fernet') }, message: /k1.*NOPE|NOPE.*k1/ },
    {
      name: 'an empty file',
      config: { keys: [{ id: 'k1', secret: 'file:empty.key' }], targets: target('fernet') },
      setup: () => writeFile(path.join(dir, 'empty.key'), ''),
      message: /k1.*empty/,
    },
    {
      name: 'an unreadable file',
      config: { keys: [{ id: 'k1', secret: 'file:a-directory' }], targets: target('fernet') },
      setup: () => mkdir(path.join(dir, 'a-directory'), { recursive: true }).then(() => undefined),
      message: /k1/,
    },
    {
      name: 'a failing cmd: (its status, never its output)',
      config: { keys: [{ id: 'k1', secret: `cmd:echo ${LEAKY}; echo ${LEAKY} >&2; exit 3` }], targets: target('fernet') },
      message: /k1.*(status|exit).*3/,
    },
    {
      name: 'a Fernet key of the wrong length',
      config: { keys: [{ id: 'k1', secret: 'env:SHORT' }], targets: target('fernet') },
      env: { SHORT: `${LEAKY}=` },
      message: /k1.*fernet/i,
    },
    {
      name: 'an aes-256-gcm key that is not 32 bytes',
      config: { keys: [{ id: 'k1', secret: 'env:AES' }], targets: target('aes-256-gcm') },
      env: { AES: Buffer.from(LEAKY.slice(0, 20)).toString('base64') },
      message: /k1.*32 bytes|32 bytes.*k1/,
    },
    {
      name: 'duplicate ids',
      config: { keys: [{ id: 'k1', secret: 'env:A' }, { id: 'k1', secret: 'env:B' }], targets: target('fernet') },
      env: { A: FERNET_KEY, B: FERNET_KEY },
      message: /keys\[1\]\.id: duplicate key id "k1"/,
    },
    {
      name: 'a literal secret in the config file',
      config: { keys: [{ id: 'k1', secret: LEAKY }], targets: target('fernet') },
      message: /keys\[0\]\.secret: expected a secret reference/,
    },
  ];
  for (const c of cases) {
    it(`exits 2 for ${c.name}, naming the key and the problem`, async () => {
      await c.setup?.();
      await writeConfig(c.config);
      const result = await check(c.env);
      expect(result.code, result.stderr).toBe(2);
      expect(result.stdout).toBe('');
      expect(result.stderr).toMatch(c.message);
      expect(result.stderr).not.toContain(LEAKY);
      expect(result.stderr).not.toContain(Buffer.from(LEAKY.slice(0, 20)).toString('base64'));
    });
  }

  it('a config error names the path and what was expected', async () => {
    await writeConfig({ keys: [{ id: 'k1', secret: 'env:K' }], targets: [{ table: 'people', columns: [], format: 'fernet' }] });
    const result = await check({ K: FERNET_KEY });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('targets[0].columns: expected at least one column');
  });

  it('a missing config file says how to make one', async () => {
    const result = await runCli(['keys', 'check', '--config', path.join(dir, 'nope.json')]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/not found — create it/);
  });
});

describe('pg-rekey itself', () => {
  it('--help lists the commands, --version prints the version, an unknown command exits 2', async () => {
    const help = await runCli(['--help']);
    expect(help.code).toBe(0);
    for (const command of ['keys', 'migrate', 'target', 'rotate', 'status']) expect(help.stdout).toContain(command);
    expect((await runCli(['--version'])).stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    const unknown = await runCli(['rotaet']);
    expect(unknown.code).toBe(2);
    expect((await runCli(['rotate', '--help'])).stdout).toContain('--max-duration');
  });

  it('keys retire --help names every step after which the rehearsal must be redone, as docs/reference.md does', async () => {
    // retireGate: a rotation, a promotion, or a verify --fix-versions that repaired hints.
    const help = (await runCli(['keys', 'retire', '--help'])).stdout.replace(/\s+/g, ' ');
    expect(help).toContain('passed after the last rotation, promotion or hint repair');
  });

  it("each command's --help lists the options docs/reference.md gives it, and no other", async () => {
    const reference = await readFile(new URL('../../docs/reference.md', import.meta.url), 'utf8');
    const table = reference.split('## Commands')[1]!.split('### `rotate` options')[0]!;
    const usages = [...table.matchAll(/^\| (`.*?`) \|/gm)].flatMap((row) => [...row[1]!.replaceAll('\\|', '¦').matchAll(/`([^`]+)`/g)].map((m) => m[1]!));
    const global = new Set(['--help', '--config', '--database-url', '--json', '--log-level', '--version']);
    const mismatches: string[] = [];
    for (const usage of usages) {
      const command = usage.split(' ').filter((w, i, all) => /^[a-z]+$/.test(w) && all.slice(0, i).every((p) => /^[a-z]+$/.test(p)));
      const documented = new Set(usage.match(/--[a-z][a-z-]*/g) ?? []);
      const help = (await runCli([...command, '--help'])).stdout;
      const offered = new Set([...help.matchAll(/^\s+(?:-\w, )?(--[a-z][a-z-]*)/gm)].map((m) => m[1]!).filter((o) => !global.has(o)));
      for (const o of documented) if (!offered.has(o)) mismatches.push(`${command.join(' ')}: ${o} is documented, not in --help`);
      for (const o of offered) if (!documented.has(o)) mismatches.push(`${command.join(' ')}: ${o} is in --help, not documented`);
    }
    expect(usages.length).toBeGreaterThanOrEqual(14);
    expect(mismatches).toEqual([]);
  });
});
