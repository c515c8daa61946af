/**
 * `migrate up` from several hosts at once (a parallel deploy step) with target
 * migrations pending: one applies them, the others wait and then find nothing
 * left to do — none fails. A waiter must not hold a snapshot while it waits:
 * the holder's CREATE INDEX CONCURRENTLY waits for older snapshots, which made
 * the waiters and the holder deadlock.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { useTestDatabase } from '../helpers/database.js';
import { createProject, type TestProject } from './project.js';

const db = useTestDatabase('migrate_concurrent');
let project: TestProject;
const MIGRATION_LOCK_ID = 0x7067726b; // src/schema/migrate.ts

beforeAll(async () => {
  await db.current.pool.query(`
    CREATE TABLE public.people (id bigint PRIMARY KEY, email text, mobno text);
    INSERT INTO public.people SELECT g, 'x' || g, 'y' || g FROM generate_series(1, 100000) g;
    CREATE TABLE public.accounts (id int PRIMARY KEY, secret text);
    INSERT INTO public.accounts SELECT g, 's' || g FROM generate_series(1, 50000) g;`);
  project = await createProject(db.current.url, { keyIds: ['k1'] });
  for (const [table, columns] of [['people', 'email,mobno'], ['accounts', 'secret']] as const) {
    const added = await project.cli(['target', 'add', '--table', table, '--columns', columns, '--format', 'fernet']);
    expect(added.code, added.stderr).toBe(0);
  }
});
afterAll(() => project?.remove());

test('three hosts running "migrate up" together all succeed', async () => {
  // Hold the migration lock a moment so all three queue on it, as in a parallel deploy.
  const holder = await db.current.pool.connect();
  await holder.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_ID]);
  const hosts = Promise.all(Array.from({ length: 3 }, () => project.cli(['migrate', 'up', '--json'], { timeoutMs: 120_000 })));
  await new Promise((resolve) => setTimeout(resolve, 1500));
  await holder.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_ID]);
  holder.release();
  for (const host of await hosts) expect(host.code, host.stderr).toBe(0);
  const invalid = await db.current.pool.query(`SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid`);
  expect(invalid.rows).toEqual([]);
  const indexes = await db.current.pool.query(`SELECT count(*)::int AS n FROM pg_indexes WHERE indexname LIKE '%kv_idx'`);
  expect(indexes.rows[0]).toEqual({ n: 3 });
}, 180_000);
