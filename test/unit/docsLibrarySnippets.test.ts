/**
 * The "Library API" code blocks of README.md and docs/reference.md, executed:
 * each is type-checked against the package's public API (src/index.ts, the
 * only entry point the package exports) with the project's strict compiler
 * options, then run, and what its comments promise is checked. A snippet that
 * stops compiling or behaves otherwise than it says fails here, not in a
 * reader's editor.
 *
 * The snippets import from 'pg-rekey'; here that becomes src/index.ts. Their
 * secrets come from env: references, set below. README's snippet uses one
 * value it does not define (valueWrittenUnder2025q4); a prelude defines it.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { DecryptError, generateKey } from '../../src/index.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const index = path.join(root, 'src', 'index.js');

/** The ```ts blocks of the `## Library API` section of a Markdown file. */
async function librarySnippets(file: string): Promise<string[]> {
  const text = await readFile(path.join(root, file), 'utf8');
  const section = text.split(/^## /m).find((s) => s.startsWith('Library API'));
  if (!section) throw new Error(`${file} has no "## Library API" section`);
  return [...section.matchAll(/^```ts\n([\s\S]*?)^```/gm)].map((m) => m[1]!);
}

const OLD = 'django-insecure-old-key-2025q4-aaaaaaaaaaaaaaaaaaaaa';
const secrets = { SECRET_KEY: generateKey('django-fernet-v1'), OLD_SECRET_KEY: OLD, SECRET_KEY_OLD: OLD };

// A value the application wrote under 2025q4, for README's reencrypt example.
const PRELUDE =
  `import { createCodec as createOldCodec } from 'pg-rekey';\n` +
  `const old = await createOldCodec({ format: 'django-fernet-v1', keys: [{ id: '2025q4', secret: 'env:OLD_SECRET_KEY' }] });\n` +
  `const valueWrittenUnder2025q4 = old.encrypt('grace@example.com');\n`;

let dir: string;
let files: { readme: string; reference: string };

/** Writes a snippet as a module that imports src/index.ts and exports its top-level names. */
async function writeModule(name: string, code: string, exported: string[]): Promise<string> {
  const file = path.join(dir, `${name}.ts`);
  const body = code.replaceAll(`from 'pg-rekey'`, `from ${JSON.stringify(index)}`);
  await writeFile(file, `${body}\nexport { ${exported.join(', ')} };\n`);
  return file;
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'pg-rekey-snippets-'));
  const [readme] = await librarySnippets('README.md');
  const [reference] = await librarySnippets('docs/reference.md');
  expect(readme, 'README.md: a ```ts block under "## Library API"').toBeDefined();
  expect(reference, 'docs/reference.md: a ```ts block under "## Library API"').toBeDefined();
  // The prelude's import goes after the snippet's own (imports first, as in any module).
  const [firstLine, ...rest] = readme!.split('\n');
  files = {
    readme: await writeModule('readme', [firstLine, PRELUDE, ...rest].join('\n'), ['codec', 'stored', 'plaintext', 'keyId', 'timestamp', 'r', 'valueWrittenUnder2025q4']),
    reference: await writeModule('reference', reference!, ['codec', 'stored', 'plaintext', 'keyId', 'moved']),
  };
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('Library API snippets', () => {
  it('compile against the public API with the project\'s compiler options', async () => {
    const { config } = ts.readConfigFile(path.join(root, 'tsconfig.json'), ts.sys.readFile);
    const { options } = ts.parseJsonConfigFileContent(config, ts.sys, root);
    // The temp directory has no package.json: say the files are ES modules (top-level await).
    const program = ts.createProgram(Object.values(files), {
      ...options,
      noEmit: true,
      rootDir: undefined,
      moduleDetection: ts.ModuleDetectionKind.Force,
      module: ts.ModuleKind.ESNext,
      moduleResolution: ts.ModuleResolutionKind.Bundler,
      typeRoots: [path.join(root, 'node_modules', '@types')],
    });
    const problems = ts
      .getPreEmitDiagnostics(program)
      .filter((d) => d.file === undefined || Object.values(files).includes(path.resolve(d.file.fileName)))
      .map((d) => `${d.file ? path.basename(d.file.fileName) : ''}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`);
    expect(problems).toEqual([]);
  }, 120_000);

  it('README: run as shown, with the results its comments give', async () => {
    vi.stubEnv('SECRET_KEY', secrets.SECRET_KEY);
    vi.stubEnv('OLD_SECRET_KEY', secrets.OLD_SECRET_KEY);
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    try {
      const m = await import(pathToFileURL(files.readme).href);
      expect(m.stored).toMatch(/^FERNET_V1:Z0FBQUFB/);
      expect([m.plaintext, m.keyId]).toEqual(['ada@example.com', '2026q1']);
      expect(typeof m.timestamp).toBe('number');
      expect(m.r).toMatchObject({ fromKeyId: '2025q4', toKeyId: '2026q1', changed: true });
      expect(m.codec.decrypt(m.r.stored).plaintext).toBe('grace@example.com');
      expect(m.codec.reencrypt(m.r.stored)).toMatchObject({ stored: m.r.stored, changed: false });
      expect(log).toHaveBeenCalledWith('DECRYPT_FAILED', 'malformed');
      expect(m.codec.keyring.keys.map((k: { id: string; role: string }) => [k.id, k.role])).toEqual([
        ['2026q1', 'primary'],
        ['2025q4', 'decrypt-only'],
      ]);
    } finally {
      log.mockRestore();
      vi.unstubAllEnvs();
    }
  });

  it('docs/reference.md: run as shown', async () => {
    vi.stubEnv('SECRET_KEY', secrets.SECRET_KEY);
    vi.stubEnv('SECRET_KEY_OLD', secrets.SECRET_KEY_OLD);
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    try {
      const m = await import(pathToFileURL(files.reference).href);
      expect([m.plaintext, m.keyId]).toEqual(['alice@example.com', '2026q1']);
      expect(m.moved).toMatchObject({ fromKeyId: '2026q1', toKeyId: '2026q1', changed: false });
      // Withholding 2025q4 does not stop a value under 2026q1 from decrypting: nothing logged.
      expect(log).not.toHaveBeenCalled();
      expect(() => m.codec.decrypt(m.stored, { without: ['2026q1'] })).toThrow(DecryptError);
    } finally {
      log.mockRestore();
      vi.unstubAllEnvs();
    }
  });
});
