/**
 * The generated target migration is lock-safe and recoverable (DESIGN §3):
 * it gives up after lock_timeout instead of queueing behind a long transaction,
 * and running it again after any partial failure completes it.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { migrate } from '../../src/schema/migrate.js';
import { renderTargetMigration, targetMigrationSql } from '../../src/schema/targetMigration.js';
import { asKeyVersionWriter, useTestDatabase } from '../helpers/database.js';

const db = useTestDatabase('target_migration');
let dir: string;
const spec = { schema: 'app', table: 'Mixed Case', columns: ['e-mail', 'phone'], registrySchema: 'pgrekey', lockTimeout: '500ms' };

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'pg-rekey-target-mig-'));
  await db.current.pool.query(`
    CREATE SCHEMA app;
    CREATE TABLE app."Mixed Case" (id int PRIMARY KEY, "e-mail" text, phone varchar(80));
    INSERT INTO app."Mixed Case" SELECT g, 'x' || g, 'y' || g FROM generate_series(1, 1000) g;
  `);
  const rendered = renderTargetMigration(spec);
  await writeFile(path.join(dir, rendered.fileName), rendered.source);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const up = () => migrate({ databaseUrl: db.current.url, schema: 'pgrekey', targetMigrationsDir: dir, direction: 'up' });

test('a long transaction on the table makes it fail after lock_timeout, not wait', async () => {
  const blocker = await db.current.pool.connect();
  try {
    await blocker.query('BEGIN');
    await blocker.query('SELECT count(*) FROM app."Mixed Case"'); // ACCESS SHARE until commit
    const started = Date.now();
    await expect(up()).rejects.toThrow(/lock timeout/);
    expect(Date.now() - started).toBeLessThan(10_000);
  } finally {
    await blocker.query('ROLLBACK');
    blocker.release();
  }
  // The failed step was one implicit transaction: nothing of it is left.
  const cols = await db.current.pool.query(
    `SELECT count(*)::int AS n FROM pg_attribute WHERE attrelid = 'app."Mixed Case"'::regclass AND attname LIKE '%_key_version'`,
  );
  expect(cols.rows[0].n).toBe(0);
});

test('after a failure between steps, running it again completes it', async () => {
  // Simulate a run that died after the first DDL step (before validation and indexes).
  const { up: steps } = targetMigrationSql(spec);
  const client = await db.current.pool.connect();
  try {
    for (const step of steps.slice(0, 2)) await client.query(step);
    await client.query('RESET lock_timeout');
  } finally {
    client.release();
  }
  const result = await up();
  expect(result.target).toHaveLength(1);
  const state = await db.current.pool.query(
    `SELECT (SELECT array_agg(convalidated ORDER BY conname) FROM pg_constraint WHERE conrelid = 'app."Mixed Case"'::regclass AND contype = 'f') AS fks,
            (SELECT array_agg(indisvalid) FROM pg_index WHERE indrelid = 'app."Mixed Case"'::regclass AND NOT indisprimary) AS idx,
            (SELECT count(*)::int FROM pg_trigger WHERE tgrelid = 'app."Mixed Case"'::regclass AND NOT tgisinternal) AS triggers`,
  );
  expect(state.rows[0]).toEqual({ fks: [true, true], idx: [true, true], triggers: 4 });
  // Quoted, odd identifiers work in the trigger too.
  await db.current.pool.query(`INSERT INTO pgrekey.keys (key_id, fingerprint) VALUES ('k1', repeat('a', 32))`);
  await asKeyVersionWriter(db.current.pool, `UPDATE app."Mixed Case" SET "e-mail_key_version" = 1 WHERE id = 1`);
  expect((await db.current.pool.query(`SELECT "e-mail_key_version" AS v FROM app."Mixed Case" WHERE id = 1`)).rows[0].v).toBe(1);
  await db.current.pool.query(`UPDATE app."Mixed Case" SET "e-mail" = 'changed' WHERE id = 1`);
  const row = await db.current.pool.query(`SELECT "e-mail_key_version" AS v FROM app."Mixed Case" WHERE id = 1`);
  expect(row.rows[0].v).toBeNull();
});

test('down removes everything it added', async () => {
  const result = await migrate({ databaseUrl: db.current.url, schema: 'pgrekey', targetMigrationsDir: dir, direction: 'down' });
  expect(result.target).toHaveLength(1);
  const left = await db.current.pool.query(
    `SELECT (SELECT count(*)::int FROM pg_attribute WHERE attrelid = 'app."Mixed Case"'::regclass AND attname LIKE '%_key_version' AND NOT attisdropped) AS cols,
            (SELECT count(*)::int FROM pg_index WHERE indrelid = 'app."Mixed Case"'::regclass) AS idx,
            (SELECT count(*)::int FROM pg_trigger WHERE tgrelid = 'app."Mixed Case"'::regclass) AS triggers`,
  );
  expect(left.rows[0]).toEqual({ cols: 0, idx: 1, triggers: 0 });
});

test('a name with a backslash keeps its reset trigger when the database has standard_conforming_strings off', async () => {
  // With the setting off, a backslash in an ordinary '…' literal is an escape: the
  // trigger's argument 'back\slash_key_version' became 'backslash_key_version', a
  // field the trigger function then silently failed to find, so an application
  // write kept a hint pg-rekey had set for the value it replaced.
  const backslashSpec = { schema: 'app', table: 'back\\slash', columns: ['e\\mail'], registrySchema: 'pgrekey' };
  const backslashDir = await mkdtemp(path.join(tmpdir(), 'pg-rekey-target-mig-'));
  try {
    await db.current.pool.query(`CREATE TABLE app."back\\slash" (id int PRIMARY KEY, "e\\mail" text); INSERT INTO app."back\\slash" VALUES (1, 'x')`);
    const rendered = renderTargetMigration(backslashSpec);
    await writeFile(path.join(backslashDir, rendered.fileName), rendered.source);
    await db.current.pool.query(`ALTER DATABASE ${db.current.name} SET standard_conforming_strings = off`);
    try {
      await migrate({ databaseUrl: db.current.url, schema: 'pgrekey', targetMigrationsDir: backslashDir, direction: 'up' });
    } finally {
      await db.current.pool.query(`ALTER DATABASE ${db.current.name} RESET standard_conforming_strings`);
    }
    await db.current.pool.query(`INSERT INTO pgrekey.keys (key_id, fingerprint) VALUES ('k_backslash', repeat('b', 32))`);
    await asKeyVersionWriter(
      db.current.pool,
      `UPDATE app."back\\slash" SET "e\\mail_key_version" = (SELECT version FROM pgrekey.keys WHERE key_id = 'k_backslash')`,
    );
    await db.current.pool.query(`UPDATE app."back\\slash" SET "e\\mail" = 'changed by the application'`);
    const row = await db.current.pool.query(`SELECT "e\\mail_key_version" AS v FROM app."back\\slash"`);
    expect(row.rows[0].v).toBeNull();
  } finally {
    await rm(backslashDir, { recursive: true, force: true });
  }
});
