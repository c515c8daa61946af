/**
 * Targets whose names need quoting in SQL — mixed case, spaces, dots, double
 * quotes, multibyte characters, keywords, a schema that is not on the
 * search_path — through the whole lifecycle a DBA runs: target add, migrate
 * up, rotate, verify, the retirement rehearsal, keys retire, migrate down;
 * an unquoted name folded as the server folds it; and a table that already
 * has a column of the name pg-rekey would give its key-version column.
 */
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database.js';
import { bothKeysCodec, createWorkspace, expectExit, type RotationWorkspace } from '../helpers/rotationFixture.js';

const db = useTestDatabase('target_identifiers');
let ws: RotationWorkspace;
const ROWS = 30;

beforeAll(async () => {
  const codec = await bothKeysCodec();
  const values = Array.from({ length: ROWS }, (_, i) => codec.encrypt(`user${i}@example.com`, { keyId: 'old' }));
  await db.current.pool.query(`
    CREATE SCHEMA "Billing Dept";
    CREATE TABLE "Billing Dept"."Card.Holders ""EU""" ("User" int PRIMARY KEY, "E-mail" text, "émail_é" text, "select" text);
    CREATE TABLE public.accounts (id int PRIMARY KEY, email text, email_key_version integer);`);
  await db.current.pool.query(
    `INSERT INTO "Billing Dept"."Card.Holders ""EU""" SELECT i, v, v, v FROM unnest($1::text[]) WITH ORDINALITY AS u(v, i)`,
    [values],
  );
  // The application's own record of which of its keys encrypted email.
  await db.current.pool.query(`INSERT INTO public.accounts SELECT i, v, 3 FROM unnest($1::text[]) WITH ORDINALITY AS u(v, i)`, [values]);
  ws = await createWorkspace(db.current.url);
  expectExit(await ws.run(['migrate', 'up']), 0);
}, 60_000);

afterAll(async () => {
  await ws?.cleanup();
});

const migrationFiles = async () => {
  const dir = path.join(ws.dir, 'migrations');
  return existsSync(dir) ? (await readdir(dir)).sort() : [];
};

it('a table, schema and columns whose names need quoting go from target add to keys retire and migrate down', async () => {
  const table = `"Billing Dept"."Card.Holders ""EU"""`;
  expectExit(await ws.run(['target', 'add', '--table', table, '--columns', 'E-mail,émail_é,select', '--format', 'django-fernet-v1']), 0);
  expectExit(await ws.run(['migrate', 'up']), 0);
  expectExit(await ws.run(['keys', 'add', 'old']), 0);
  expectExit(await ws.run(['rotate', '--batch-size', '7']), 0);
  expectExit(await ws.run(['verify']), 0);
  expectExit(await ws.run(['verify', '--without', 'old']), 0);

  // The rehearsal above read every column: it must open the retire gate.
  const retire = await ws.run(['keys', 'retire', 'old', '--json']);
  expectExit(retire, 0);
  const state = await db.current.pool.query(`SELECT state FROM pgrekey.keys WHERE key_id = 'old'`);
  expect(state.rows).toEqual([{ state: 'retired' }]);

  const codec = await bothKeysCodec();
  const { rows } = await db.current.pool.query<{ id: number; a: string; b: string; c: string }>(
    `SELECT "User" AS id, "E-mail" AS a, "émail_é" AS b, "select" AS c FROM ${table} ORDER BY 1`,
  );
  expect(rows).toHaveLength(ROWS);
  for (const row of rows) {
    for (const value of [row.a, row.b, row.c]) {
      expect(codec.decrypt(value)).toMatchObject({ plaintext: `user${row.id - 1}@example.com`, keyId: 'new' });
    }
  }

  expectExit(await ws.run(['migrate', 'down']), 0);
  const left = await db.current.pool.query(
    `SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
    [table],
  );
  expect(left.rows.map((r) => r.attname)).toEqual(['User', 'E-mail', 'émail_é', 'select']);
}, 120_000);

it("target add refuses a table whose <column>_key_version is the application's own column, and writes nothing", async () => {
  const configBefore = await readFile(path.join(ws.dir, 'pg-rekey.config.json'), 'utf8');
  const migrationsBefore = await migrationFiles();
  const added = await ws.run(['target', 'add', '--table', 'public.accounts', '--columns', 'email', '--format', 'django-fernet-v1']);
  // Accepted, its migration would adopt the column (ADD COLUMN IF NOT EXISTS),
  // rotate would overwrite the application's values, and migrate down would drop them.
  expectExit(added, 2);
  expect(added.stderr).toContain('public.accounts already has a column email_key_version that is not a pg-rekey key-version column');
  expect(await readFile(path.join(ws.dir, 'pg-rekey.config.json'), 'utf8')).toBe(configBefore);
  expect(await migrationFiles()).toEqual(migrationsBefore);
  const kept = await db.current.pool.query(`SELECT count(*)::int AS n FROM public.accounts WHERE email_key_version = 3`);
  expect(kept.rows).toEqual([{ n: ROWS }]);
});

it('an unquoted --table is folded as the server folds it: ASCII letters only, so Ärger is the table CREATE TABLE Ärger made', async () => {
  // In a UTF-8 database the server lower-cases only A–Z in an unquoted name: these are two tables.
  await db.current.pool.query(`
    CREATE TABLE Ärger (id int PRIMARY KEY, email text);
    CREATE TABLE "ärger" (id int PRIMARY KEY, email text);`);
  const tables = await db.current.pool.query(`SELECT relname FROM pg_class WHERE relname IN ('Ärger', 'ärger') ORDER BY 1`);
  expect(tables.rows.map((r) => r.relname).sort()).toEqual(['Ärger', 'ärger'].sort());
  const added = await ws.run(['target', 'add', '--table', 'Ärger', '--columns', 'email', '--format', 'django-fernet-v1', '--dry-run', '--json']);
  expectExit(added, 0);
  // Folded by JavaScript's toLowerCase it named the other table, which has an email column too.
  expect(JSON.parse(added.stdout).target.name).toBe('public."Ärger"');
});

it('a classic-inheritance child created after its parent was migrated inherits the key-version column: it can become a target', async () => {
  await db.current.pool.query(`CREATE TABLE public.logs (id int PRIMARY KEY, email text)`);
  expectExit(await ws.run(['target', 'add', '--table', 'public.logs', '--columns', 'email', '--format', 'django-fernet-v1']), 0);
  expectExit(await ws.run(['migrate', 'up']), 0);
  // The child gets the parent's email_key_version, but not its foreign key: as
  // "configure each child as its own target" advises, it is added as a target.
  await db.current.pool.query(`CREATE TABLE public.logs_2025 (PRIMARY KEY (id)) INHERITS (public.logs)`);
  expectExit(await ws.run(['target', 'add', '--table', 'public.logs_2025', '--columns', 'email', '--format', 'django-fernet-v1']), 0);
  expectExit(await ws.run(['migrate', 'up']), 0);
  const fks = await db.current.pool.query(
    `SELECT conrelid::regclass::text AS tbl FROM pg_constraint WHERE contype = 'f' AND confrelid = 'pgrekey.keys'::regclass
        AND conrelid IN ('public.logs'::regclass, 'public.logs_2025'::regclass) ORDER BY 1`,
  );
  expect(fks.rows.map((r) => r.tbl)).toEqual(['logs', 'logs_2025']);
});

it("a migrated target whose foreign keys a DBA dropped is still pg-rekey's (its reset trigger says so): it rotates", async () => {
  // 'old' is retired by now (first test): the values are under 'new' with unknown key versions.
  const codec = await bothKeysCodec();
  await db.current.pool.query(`CREATE TABLE public.tokens (id int PRIMARY KEY, token text)`);
  await db.current.pool.query(`INSERT INTO public.tokens SELECT i, v FROM unnest($1::text[]) WITH ORDINALITY AS u(v, i)`, [
    [codec.encrypt('t-1', { keyId: 'new' }), codec.encrypt('t-2', { keyId: 'new' })],
  ]);
  expectExit(await ws.run(['target', 'add', '--table', 'public.tokens', '--columns', 'token', '--format', 'django-fernet-v1']), 0);
  expectExit(await ws.run(['migrate', 'up']), 0);
  // What `npm run bench -- --what-if no-version-fks` does to measure their cost.
  const { rows } = await db.current.pool.query<{ conname: string }>(
    `SELECT conname FROM pg_constraint WHERE conrelid = 'public.tokens'::regclass AND contype = 'f'`,
  );
  expect(rows).toHaveLength(1);
  await db.current.pool.query(`ALTER TABLE public.tokens DROP CONSTRAINT ${JSON.stringify(rows[0]!.conname)}`);

  expectExit(await ws.run(['rotate', '--target', 'public.tokens']), 0);
  const after = await db.current.pool.query(
    `SELECT t.token_key_version = k.version AS on_new FROM public.tokens t, pgrekey.keys k WHERE k.key_id = 'new' ORDER BY t.id`,
  );
  expect(after.rows).toEqual([{ on_new: true }, { on_new: true }]);
});
