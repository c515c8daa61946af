/**
 * Configs with several targets at once: tables in several schemas, each in
 * its own format (fernet, django-fernet-v1, django-fernet-v2, aes-256-gcm),
 * all sharing the same key ids. A rotation moves every value of every
 * selected target to the target key exactly once and leaves the others alone.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createCodec } from '../../src/crypto/createCodec.js';
import type { Codec } from '../../src/crypto/codec.js';
import type { Format } from '../../src/crypto/formats.js';
import { useTestDatabase } from '../helpers/database.js';
import { createProject, jsonOf, type TestProject } from './project.js';
import { startCli, waitForStderr, type RotationWorkspace } from '../helpers/rotationFixture.js';

const db = useTestDatabase('cli_multi_format');
let project: TestProject;
const ROWS = 600;

interface Target {
  table: string;
  columns: string[];
  format: Format;
  key?: string;
}

const TARGETS: Target[] = [
  { table: 'public.people', columns: ['email', 'mobno'], format: 'django-fernet-v1' },
  { table: 'app.tokens', columns: ['token'], format: 'fernet' },
  { table: 'app.notes', columns: ['body'], format: 'django-fernet-v2' },
  { table: 'billing.cards', columns: ['pan'], format: 'aes-256-gcm' },
];

const codecs = new Map<Format, Codec>();
const codecOf = (format: Format) => codecs.get(format)!;
const plaintextOf = (table: string, column: string, id: number) => `${table}.${column}#${id}`;

/** Every value of `t`: [id, column, stored, keyVersion id]. */
async function valuesOf(t: Target): Promise<{ id: number; column: string; stored: string | null; key: string | null }[]> {
  const out = [];
  for (const column of t.columns) {
    const { rows } = await db.current.pool.query(
      `SELECT t.id, t.${column} AS stored, k.key_id AS key FROM ${t.table} t LEFT JOIN pgrekey.keys k ON k.version = t.${column}_key_version ORDER BY t.id`,
    );
    out.push(...rows.map((r) => ({ id: Number(r.id), column, stored: r.stored, key: r.key })));
  }
  return out;
}

/** Asserts every value of `t` decrypts to its plaintext under `keyId`, with its key version saying so (or NULL when `hint` is false). */
async function expectTargetUnder(t: Target, keyId: string): Promise<void> {
  const codec = codecOf(t.format);
  for (const v of await valuesOf(t)) {
    if (v.stored === null) continue;
    const d = codec.decrypt(v.stored);
    expect({ where: `${t.table}.${v.column}#${v.id}`, plaintext: d.plaintext, keyId: d.keyId, hint: v.key }).toEqual({
      where: `${t.table}.${v.column}#${v.id}`,
      plaintext: plaintextOf(t.table, v.column, v.id),
      keyId,
      hint: keyId,
    });
  }
}

/** The project as startCli wants it: the CLI started in its directory, with the database URL in its environment. */
const asWorkspace = (): RotationWorkspace => ({
  dir: project.dir,
  env: { ...project.env, DATABASE_URL: db.current.url },
  run: (args, options) => project.cli(args, options),
  cleanup: () => project.remove(),
});

beforeAll(async () => {
  project = await createProject(db.current.url, { keyIds: ['k1', 'k2', 'k3'] });
  for (const format of ['fernet', 'django-fernet-v1', 'django-fernet-v2', 'aes-256-gcm'] as const) {
    codecs.set(
      format,
      await createCodec({ format, keys: ['k1', 'k2', 'k3'].map((id) => ({ id, secret: `env:K_${id}` })), env: Object.fromEntries(Object.entries(project.secrets).map(([id, s]) => [`K_${id}`, s])) }),
    );
  }
  await db.current.pool.query(`
    CREATE SCHEMA app; CREATE SCHEMA billing;
    CREATE TABLE public.people (id bigint PRIMARY KEY, email text, mobno text);
    CREATE TABLE app.tokens (id int PRIMARY KEY, token text);
    CREATE TABLE app.notes (id int PRIMARY KEY, body text);
    CREATE TABLE billing.cards (id int PRIMARY KEY, pan text);`);
  for (const t of TARGETS) {
    const codec = codecOf(t.format);
    const rows: unknown[][] = [];
    for (let id = 1; id <= ROWS; id++) rows.push([id, ...t.columns.map((c) => (id % 11 === 0 ? null : codec.encrypt(plaintextOf(t.table, c, id), { keyId: 'k1' })))]);
    const cols = ['id', ...t.columns];
    await db.current.pool.query(
      `INSERT INTO ${t.table} (${cols.join(', ')}) SELECT * FROM unnest(${cols.map((_, i) => `$${i + 1}::${i === 0 ? 'int' : 'text'}[]`).join(', ')})`,
      cols.map((_, i) => rows.map((r) => r[i])),
    );
  }
  await db.current.pool.query('ANALYZE');
  for (const t of TARGETS) {
    const add = await project.cli(['target', 'add', '--table', t.table, '--columns', t.columns.join(','), '--format', t.format]);
    expect(add.code, add.stderr).toBe(0);
  }
  const up = await project.cli(['migrate', 'up']);
  expect(up.code, up.stderr).toBe(0);
  for (const id of ['k1', 'k2', 'k3']) {
    const r = await project.cli(['keys', 'add', id]);
    expect(r.code, r.stderr).toBe(0);
  }
  const fix = await project.cli(['verify', '--fix-versions']);
  expect(fix.code, fix.stdout + fix.stderr).toBe(0);
});

afterAll(async () => {
  await project?.remove();
});

describe('several targets in several formats', () => {
  test('a run limited by --target and stopped is resumed by the command rotate and status give, which names its targets (not refused as another run)', async () => {
    const cli = await startCli(asWorkspace(), ['rotate', '--to', 'k2', '--target', 'app.tokens.token', '--target', 'billing.cards', '--batch-size', '10', '--max-rate', '20']);
    await waitForStderr(cli, /Started rotation run \d+/);
    // SIGTERM: it stops at a batch boundary and hands its ranges back, so no lease keeps the run "running".
    cli.child.kill('SIGTERM');
    const stopped = await cli.done;
    expect(stopped.code, stopped.stderr).toBe(75);
    expect(stopped.stdout).toContain('run "pg-rekey rotate --to k2 --target app.tokens.token --target billing.cards" again to continue');
    const status = await project.cli(['status', '--json']);
    expect(status.code, status.stderr).toBe(0);
    const note: string = jsonOf(status).note;
    const resume = /run "pg-rekey ([^"]+)" to resume/.exec(note)?.[1];
    expect(resume, note).toBe('rotate --to k2 --target app.tokens.token --target billing.cards');
    // A rotate of every target is another run: refused, naming the command that joins this one.
    const whole = await project.cli(['rotate', '--to', 'k2']);
    expect(whole.code, whole.stderr).toBe(4);
    expect(whole.stderr).toContain(`finish it first with "pg-rekey ${resume}"`);
    const result = await project.cli([...resume!.split(' ').map((a) => a.replace(/^'(.*)'$/, '$1')), '--json']);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(jsonOf(result)).toMatchObject({ status: 'succeeded', failed: 0 });
    await expectTargetUnder(TARGETS[1]!, 'k2');
    await expectTargetUnder(TARGETS[3]!, 'k2');
    // The targets the run did not name are untouched.
    await expectTargetUnder(TARGETS[0]!, 'k1');
    await expectTargetUnder(TARGETS[2]!, 'k1');
  });

  test('a --target that names no configured column exits 2 before anything is written, even beside one that does', async () => {
    const runs = async () => (await db.current.pool.query('SELECT count(*)::int AS n FROM pgrekey.runs')).rows[0].n;
    const before = await runs();
    for (const command of [['rotate', '--to', 'k3'], ['rotate', '--to', 'k3', '--dry-run'], ['verify']]) {
      const result = await project.cli([...command, '--target', 'app.tokens.token', '--target', 'billing.cards.pn']);
      expect(result.code, `${command.join(' ')}: ${result.stdout}${result.stderr}`).toBe(2);
      expect(result.stderr).toContain('--target billing.cards.pn matches no configured target column');
    }
    expect(await runs()).toBe(before);
    await expectTargetUnder(TARGETS[1]!, 'k2');
  });

  test('a run left open when a target was added to the config is finished by the command its refusal gives', async () => {
    const cli = await startCli(asWorkspace(), ['rotate', '--to', 'k3', '--batch-size', '10', '--max-rate', '20']);
    await waitForStderr(cli, /Started rotation run \d+/);
    cli.child.kill('SIGTERM');
    expect((await cli.done).code).toBe(75);
    // Meanwhile another encrypted table is configured and migrated.
    await db.current.pool.query('CREATE TABLE app.secrets (id int PRIMARY KEY, secret text)');
    await db.current.pool.query('INSERT INTO app.secrets VALUES (1, $1)', [
      codecOf('fernet').encrypt('app.secrets.secret#1', { keyId: 'k1' }),
    ]);
    for (const args of [['target', 'add', '--table', 'app.secrets', '--columns', 'secret', '--format', 'fernet'], ['migrate', 'up']]) {
      const r = await project.cli(args);
      expect(r.code, r.stderr).toBe(0);
    }
    // status names the open run's columns, which a rotate of every target configured now would not be.
    const status = await project.cli(['status', '--json']);
    const columns = TARGETS.flatMap((t) => t.columns.map((c) => `--target ${t.table}.${c}`)).join(' ');
    expect(jsonOf(status).note).toBe(`stopped: no worker holds a lease — run "pg-rekey rotate --to k3 ${columns}" to resume`);
    // A rotate of every target configured now is another run: refused, naming the command that finishes the open one.
    const refused = await project.cli(['rotate', '--to', 'k3']);
    expect(refused.code, refused.stderr).toBe(4);
    const finish = /finish it first with "pg-rekey ([^"]+)"/.exec(refused.stderr)?.[1];
    expect(finish, refused.stderr).toBeDefined();
    const finished = await project.cli([...finish!.split(' '), '--json']);
    expect(finished.code, finished.stdout + finished.stderr).toBe(0);
    expect(jsonOf(finished)).toMatchObject({ status: 'succeeded', failed: 0 });
    for (const t of TARGETS) await expectTargetUnder(t, 'k3');
    // Then the new target gets its own run.
    const rest = await project.cli(['rotate', '--to', 'k3', '--json']);
    expect(rest.code, rest.stdout + rest.stderr).toBe(0);
    await expectTargetUnder({ table: 'app.secrets', columns: ['secret'], format: 'fernet' }, 'k3');
  });
});
