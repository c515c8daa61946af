/**
 * `pg-rekey target add` (issue 3 §3): validation against pg_catalog (exit 2),
 * the generated migration on a 100,000-row table, and the trigger that keeps
 * key-version columns honest under application writes.
 */
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { asKeyVersionWriter, useTestDatabase } from '../helpers/database.js';
import { createProject, jsonOf, type TestProject } from './project.js';

const db = useTestDatabase('cli_target_add');
let project: TestProject;

beforeAll(async () => {
  await db.current.pool.query(`
    CREATE TABLE public.accounts (tenant int NOT NULL, id int NOT NULL, secret text, PRIMARY KEY (tenant, id));
    CREATE TABLE public.tokens (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), token varchar(200));
    CREATE TABLE public.loose (a int, secret text);
    CREATE TABLE public.nums (id int PRIMARY KEY, n integer);
    CREATE TABLE public.notes (id int PRIMARY KEY, body text);
    CREATE TABLE public.people (id bigint PRIMARY KEY, email text, mobno text, updated_at timestamptz);
    INSERT INTO public.people (id, email, mobno)
      SELECT g, 'FERNET_V1:e' || g, CASE WHEN g % 7 = 0 THEN NULL ELSE 'FERNET_V1:m' || g END
        FROM generate_series(1, 100000) AS g;
  `);
  project = await createProject(db.current.url, { keyIds: ['k1', 'k2'] });
});

afterAll(async () => {
  await project?.remove();
});

const migrationFiles = async () => (existsSync(project.migrationsDir) ? (await readdir(project.migrationsDir)).sort() : []);

describe('target add: validation', () => {
  test('--dry-run prints the migration and the config change, writes nothing', async () => {
    const before = await project.readConfig();
    const r = await project.cli(['target', 'add', '--table', 'accounts', '--columns', 'secret', '--format', 'fernet', '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('pgm.noTransaction()');
    expect(r.stdout).toContain('CREATE INDEX CONCURRENTLY IF NOT EXISTS');
    expect(r.stdout).toContain('"table": "public.accounts"');
    expect(await migrationFiles()).toEqual([]);
    expect(await project.readConfig()).toEqual(before);
  });

  test('a composite-key table: writes the migration and adds the target', async () => {
    const r = await project.cli(['target', 'add', '--table', 'accounts', '--columns', 'secret', '--format', 'fernet', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = jsonOf(r);
    expect(out.target.key.map((k: { name: string }) => k.name)).toEqual(['tenant', 'id']);
    expect(out.config.action).toBe('added');
    const files = await migrationFiles();
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(/^\d+_pg-rekey-target-public-accounts\.mjs$/);
    const config = await project.readConfig();
    expect(config.targets).toEqual([{ table: 'public.accounts', columns: ['secret'], format: 'fernet' }]);
    expect(config.migrationsDir).toBe('migrations'); // other fields kept
  });

  test('adding it again says it is already there and writes no second migration', async () => {
    const r = await project.cli(['target', 'add', '--table', 'public.accounts', '--columns', 'secret', '--format', 'fernet']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('already there');
    expect(await migrationFiles()).toHaveLength(1);
  });

  test('a uuid-key table', async () => {
    const r = await project.cli(['target', 'add', '--table', 'tokens', '--columns', 'token', '--format', 'aes-256-gcm', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(jsonOf(r).target.key).toEqual([{ name: 'id', type: 'uuid' }]);
  });

  test.each([
    ['a table without a unique NOT NULL key', ['--table', 'loose', '--columns', 'secret'], 'no primary key or unique index'],
    ['a missing table', ['--table', 'public.nope', '--columns', 'secret'], 'does not exist'],
    ['a non-text column', ['--table', 'nums', '--columns', 'n'], 'not text or varchar'],
    ['a missing column', ['--table', 'nums', '--columns', 'zzz'], 'does not exist'],
    ['a key that is not unique', ['--table', 'accounts', '--columns', 'secret', '--key', 'id'], 'is not a unique key'],
    // Written as given, the config would fail its own validation and stop every later command.
    ['a column named twice', ['--table', 'notes', '--columns', 'body,body'], '--columns names body twice'],
  ])('%s exits 2 and writes nothing', async (_what, args, message) => {
    const files = await migrationFiles();
    const config = await project.readConfig();
    const r = await project.cli(['target', 'add', ...args, '--format', 'fernet']);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(message);
    expect(await migrationFiles()).toEqual(files);
    expect(await project.readConfig()).toEqual(config);
  });
});

describe('target add: the migration on a 100,000-row table', () => {
  test('migrate up adds the columns, validated foreign keys and valid indexes', async () => {
    const add = await project.cli(['target', 'add', '--table', 'people', '--columns', 'email,mobno', '--format', 'django-fernet-v1']);
    expect(add.code, add.stderr).toBe(0);
    const up = await project.cli(['migrate', 'up', '--json'], { timeoutMs: 120_000 });
    expect(up.code, up.stderr).toBe(0);
    expect(jsonOf(up).target).toHaveLength(3);
    const pool = db.current.pool;
    const cols = await pool.query(
      `SELECT attname, format_type(atttypid, atttypmod) AS type, attnotnull FROM pg_attribute
        WHERE attrelid = 'public.people'::regclass AND attname LIKE '%_key_version' ORDER BY attname`,
    );
    expect(cols.rows).toEqual([
      { attname: 'email_key_version', type: 'smallint', attnotnull: false },
      { attname: 'mobno_key_version', type: 'smallint', attnotnull: false },
    ]);
    const fks = await pool.query(
      `SELECT conname, convalidated, confrelid::regclass::text AS ref FROM pg_constraint
        WHERE conrelid = 'public.people'::regclass AND contype = 'f' ORDER BY conname`,
    );
    expect(fks.rows).toEqual([
      { conname: 'people_email_kv_fkey', convalidated: true, ref: 'pgrekey.keys' },
      { conname: 'people_mobno_kv_fkey', convalidated: true, ref: 'pgrekey.keys' },
    ]);
    const idx = await pool.query(
      `SELECT ic.relname, i.indisvalid FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
        WHERE i.indrelid = 'public.people'::regclass AND NOT i.indisprimary ORDER BY ic.relname`,
    );
    expect(idx.rows).toEqual([
      { relname: 'people_email_07f377_kv_idx', indisvalid: true },
      { relname: 'people_mobno_e75852_kv_idx', indisvalid: true },
    ]);
    const count = await pool.query('SELECT count(*)::int AS n FROM public.people WHERE email_key_version IS NULL');
    expect(count.rows[0].n).toBe(100_000);
  });

  test('the triggers keep only the versions pg-rekey writes; any other write of the value or its version makes it unknown', async () => {
    const pool = db.current.pool;
    const add = await project.cli(['keys', 'add', 'k1', '--json']);
    expect(add.code, add.stderr).toBe(0);
    const v1 = jsonOf(add).version as number;
    const v2 = jsonOf(await project.cli(['keys', 'add', 'k2', '--json'])).version as number;
    expect(v2).not.toBe(v1);
    await asKeyVersionWriter(pool, 'UPDATE public.people SET email_key_version = $1, mobno_key_version = $1 WHERE id <= 10 AND id <> 2', [v1]);
    // Application-style write: knows nothing of the key-version column.
    await pool.query(`UPDATE public.people SET email = 'FERNET_V1:new', updated_at = now() WHERE id = 1`);
    // pg-rekey's writes: set both (from unknown, and from another key).
    await asKeyVersionWriter(pool, `UPDATE public.people SET email = 'FERNET_V1:rot', email_key_version = $1 WHERE id = 2`, [v1]);
    await asKeyVersionWriter(pool, `UPDATE public.people SET email = 'FERNET_V1:rot', email_key_version = $1 WHERE id = 4`, [v2]);
    // Unrelated write: the encrypted column is unchanged.
    await pool.query(`UPDATE public.people SET updated_at = now(), email = email WHERE id = 3`);
    // A full-row ORM save with a new value and the version it loaded earlier: not trusted,
    // whether that version is still the row's (5) or has changed since (6).
    await pool.query(`UPDATE public.people SET email = 'FERNET_V1:orm', email_key_version = $1 WHERE id = 5`, [v1]);
    await pool.query(`UPDATE public.people SET email = 'FERNET_V1:orm', email_key_version = $1 WHERE id = 6`, [v2]);
    // The version alone, written by anyone but pg-rekey: not trusted either.
    await pool.query(`UPDATE public.people SET email_key_version = $1 WHERE id = 7`, [v2]);
    // Rows inserted with a version: kept only from pg-rekey.
    const insert = `INSERT INTO public.people (id, email, email_key_version) VALUES ($1, 'FERNET_V1:ins', $2)`;
    await pool.query(insert, [100_001, v1]);
    await asKeyVersionWriter(pool, insert, [100_002, v1]);
    const rows = await pool.query(
      'SELECT id::int, email_key_version AS e, mobno_key_version AS m FROM public.people WHERE id <= 7 OR id > 100000 ORDER BY id',
    );
    expect(rows.rows).toEqual([
      { id: 1, e: null, m: v1 },
      { id: 2, e: v1, m: null },
      { id: 3, e: v1, m: v1 },
      { id: 4, e: v2, m: v1 },
      { id: 5, e: null, m: v1 },
      { id: 6, e: null, m: v1 },
      { id: 7, e: null, m: v1 },
      { id: 100_001, e: null, m: null },
      { id: 100_002, e: v1, m: null },
    ]);
    await pool.query('DELETE FROM public.people WHERE id > 100000');
    // The foreign key refuses a version the registry does not know.
    await expect(asKeyVersionWriter(pool, 'UPDATE public.people SET email_key_version = 999 WHERE id = 6')).rejects.toMatchObject({
      code: '23503',
    });
  });

  test('keys list counts rows per column and the unknown ones', async () => {
    const r = await project.cli(['keys', 'list', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const inv = jsonOf(r);
    const k1 = inv.keys.find((k: { id: string }) => k.id === 'k1');
    // Rows 1..10 but 2 were set to k1; then 1, 5, 6 and 7 were reset, 2 joined, 4 moved to k2.
    expect(k1.rows['public.people.email']).toBe(5);
    expect(k1.rows['public.people.mobno']).toBe(8); // 7 has no mobno; 2 was never set
    expect(inv.keys.find((k: { id: string }) => k.id === 'k2').rows['public.people.email']).toBe(1);
    expect(inv.unknown['public.people.email']).toBe(100_000 - 6);
  });

  test('migrate down removes the columns, triggers and indexes; up restores them', async () => {
    const pool = db.current.pool;
    const down = await project.cli(['migrate', 'down', '--json']);
    expect(down.code, down.stderr).toBe(0);
    expect(jsonOf(down).target).toEqual([expect.stringContaining('pg-rekey-target-public-people')]);
    const left = await pool.query(
      `SELECT (SELECT count(*)::int FROM pg_attribute WHERE attrelid = 'public.people'::regclass AND attname LIKE '%_key_version' AND NOT attisdropped) AS cols,
              (SELECT count(*)::int FROM pg_trigger WHERE tgrelid = 'public.people'::regclass AND NOT tgisinternal) AS triggers,
              (SELECT count(*)::int FROM pg_index WHERE indrelid = 'public.people'::regclass) AS indexes`,
    );
    expect(left.rows[0]).toEqual({ cols: 0, triggers: 0, indexes: 1 });
    const up = await project.cli(['migrate', 'up'], { timeoutMs: 120_000 });
    expect(up.code, up.stderr).toBe(0);
    const trig = await pool.query(`SELECT count(*)::int AS n FROM pg_trigger WHERE tgrelid = 'public.people'::regclass AND NOT tgisinternal`);
    expect(trig.rows[0].n).toBe(4); // per column: on UPDATE and on INSERT
  });
});
