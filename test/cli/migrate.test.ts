/**
 * `pg-rekey migrate up | down | status` against a real server (issue 3 §2):
 * idempotent, safe under concurrency, reversible, and every other command
 * refuses an unmigrated database with exit 3.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { dumpSchema } from '../../src/schema/dumpSchema.js';
import { UsageError } from '../../src/errors.js';
import { migrate, ownMigrationNames } from '../../src/schema/migrate.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { createProject, jsonOf, type TestProject } from './project.js';

let db: TestDatabase;
let project: TestProject;

// Test databases come migrated from the template; these tests start from an
// empty database, so they undo everything first (which also exercises down).
beforeAll(async () => {
  db = await createTestDatabase('cli_migrate');
  project = await createProject(db.url);
  const down = await project.cli(['migrate', 'down', '--all']);
  expect(down.code, down.stderr).toBe(0);
  await db.pool.query('DROP SCHEMA pgrekey CASCADE');
});

afterAll(async () => {
  await project?.remove();
  await db?.drop();
});

describe('migrate', () => {
  test('on a database pg-rekey was never installed in, down, status and up --dry-run create nothing', async () => {
    // A target migration on disk too: down undoes those first, and must not create their table either.
    await mkdir(project.migrationsDir, { recursive: true });
    await writeFile(path.join(project.migrationsDir, '0001_unapplied.sql'), '-- Up Migration\nSELECT 1;\n-- Down Migration\nSELECT 1;\n');
    const ourSchema = async () => (await db.pool.query(`SELECT 1 FROM pg_namespace WHERE nspname = 'pgrekey'`)).rowCount;
    try {
      for (const args of [['migrate', 'down'], ['migrate', 'down', '--all'], ['migrate', 'down', '--dry-run']]) {
        const r = await project.cli(args);
        expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
        expect(r.stdout, args.join(' ')).toMatch(/Nothing to undo|nothing to do/);
        expect(await ourSchema(), args.join(' ')).toBe(0);
      }
      const down = await project.cli(['migrate', 'down', '--json']);
      expect(down.code, down.stderr).toBe(0);
      expect(jsonOf(down)).toMatchObject({ own: [], target: [] });
      for (const args of [['migrate', 'status'], ['migrate', 'up', '--dry-run']]) {
        const r = await project.cli(args);
        expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
        expect(await ourSchema(), args.join(' ')).toBe(0);
      }
      // Still "not installed", not "older than this pg-rekey".
      const listed = await project.cli(['keys', 'list']);
      expect(listed.code).toBe(3);
      expect(listed.stderr).toContain('not installed');
    } finally {
      await rm(project.migrationsDir, { recursive: true, force: true });
    }
  });

  test('commands on an unmigrated database exit 3 naming "pg-rekey migrate up"', async () => {
    for (const args of [['keys', 'list'], ['keys', 'add', 'k1'], ['keys', 'promote', 'k1'], ['keys', 'retire', 'k2']]) {
      const r = await project.cli(args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(3);
      expect(r.stderr).toContain('pg-rekey migrate up');
    }
  });

  test('--dry-run prints the SQL and writes nothing', async () => {
    const r = await project.cli(['migrate', 'up', '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('CREATE TABLE keys');
    const schemas = await db.pool.query(`SELECT 1 FROM pg_namespace WHERE nspname = 'pgrekey'`);
    expect(schemas.rowCount).toBe(0);
  });

  test('status lists our migrations as pending', async () => {
    const r = await project.cli(['migrate', 'status', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const status = jsonOf(r);
    const own = await ownMigrationNames();
    expect(status.own.map((m: { applied: boolean }) => m.applied)).toEqual(own.map(() => false));
    expect(status.pending).toBe(own.length);
  });

  test('five concurrent "migrate up" processes all succeed; exactly one applies', async () => {
    const results = await Promise.all(Array.from({ length: 5 }, () => project.cli(['migrate', 'up', '--json'])));
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    const applied = results.map((r) => jsonOf(r).own.length);
    // Counted from migrations/, so a new migration does not need this test edited.
    const own = await ownMigrationNames();
    expect(applied.filter((n) => n > 0)).toEqual([own.length]);
    const rows = await db.pool.query('SELECT name FROM pgrekey.pgrekey_migrations');
    expect(rows.rowCount).toBe(own.length);
  });

  test('"migrate up" again is a no-op', async () => {
    const before = await dumpSchema(db.pool, 'pgrekey');
    const r = await project.cli(['migrate', 'up']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('Nothing to do');
    expect(await dumpSchema(db.pool, 'pgrekey')).toBe(before);
    const status = jsonOf(await project.cli(['migrate', 'status', '--json']));
    expect(status.pending).toBe(0);
  });

  test('"migrate down" with a count that is not a positive whole number exits 2 and undoes nothing', async () => {
    // node-pg-migrate slices with -count: 0 or NaN would select every migration.
    const before = await dumpSchema(db.pool, 'pgrekey');
    for (const count of ['0', 'abc', '-1', '1.5', '']) {
      const r = await project.cli(['migrate', 'down', '--count', count]);
      expect(r.code, `--count ${JSON.stringify(count)}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toContain('--count');
    }
    const bare = await project.cli(['migrate', 'down', '--count']);
    expect(bare.code, bare.stderr).toBe(2);
    expect(await dumpSchema(db.pool, 'pgrekey')).toBe(before);
  });

  test('the library refuses a down count of 0 or NaN too', async () => {
    const before = await dumpSchema(db.pool, 'pgrekey');
    for (const count of [0, Number.NaN, -2, 0.5]) {
      await expect(migrate({ databaseUrl: db.url, schema: 'pgrekey', direction: 'down', count })).rejects.toBeInstanceOf(UsageError);
    }
    expect(await dumpSchema(db.pool, 'pgrekey')).toBe(before);
  });

  test('down then up restores the schema', async () => {
    const before = await dumpSchema(db.pool, 'pgrekey');
    const down = await project.cli(['migrate', 'down', '--all', '--json']);
    expect(down.code, down.stderr).toBe(0);
    expect(jsonOf(down).own).toEqual([...(await ownMigrationNames())].reverse());
    const gone = await db.pool.query(`SELECT to_regclass('pgrekey.keys') AS t`);
    expect(gone.rows[0].t).toBeNull();
    const listed = await project.cli(['keys', 'list']);
    expect(listed.code).toBe(3);
    const up = await project.cli(['migrate', 'up']);
    expect(up.code, up.stderr).toBe(0);
    expect(await dumpSchema(db.pool, 'pgrekey')).toBe(before);
  });

  test('an unknown (newer) migration in the schema exits 3 with "upgrade pg-rekey"', async () => {
    await db.pool.query(`INSERT INTO pgrekey.pgrekey_migrations (name, run_on) VALUES ('9999_from_the_future', now())`);
    try {
      const r = await project.cli(['keys', 'list']);
      expect(r.code).toBe(3);
      expect(r.stderr).toContain('upgrade pg-rekey');
      // An older pg-rekey's migrate (a host not upgraded yet, a rolled-back deploy)
      // must not call that schema current, nor fail as if the database were down.
      const before = await dumpSchema(db.pool, 'pgrekey');
      for (const args of [['migrate', 'up'], ['migrate', 'up', '--dry-run'], ['migrate', 'down'], ['migrate', 'down', '--dry-run']]) {
        const m = await project.cli(args);
        expect(m.code, `${args.join(' ')}: ${m.stdout}${m.stderr}`).toBe(3);
        expect(m.stderr, args.join(' ')).toContain('newer than this pg-rekey (it has 9999_from_the_future) — upgrade pg-rekey');
      }
      expect(await dumpSchema(db.pool, 'pgrekey')).toBe(before);
    } finally {
      await db.pool.query(`DELETE FROM pgrekey.pgrekey_migrations WHERE name = '9999_from_the_future'`);
    }
  });
});
