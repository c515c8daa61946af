/**
 * `migrate` behind a connection pooler. In transaction mode (PgBouncer's
 * usual setting for applications) each transaction may run on another server
 * session: through PgBouncer 1.18, pg-rekey's tables were created in
 * `public`, the migration lock stayed held on a pooled server connection and
 * `migrate up` still reported success. migrate now refuses such a URL before
 * it writes anything (exit 2), and works through a session-mode pool; rotate
 * and the other commands keep no state between transactions and work through
 * either (src/db/dedicatedSession.ts). The pooler is test/helpers/connectionPooler.ts.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startConnectionPooler, type ConnectionPooler } from '../helpers/connectionPooler.js';
import { adminUrl, createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { withAdminClient } from '../helpers/template.js';
import { createWorkspace, expectAllUnderKey, expectExit, seedPeople } from '../helpers/rotationFixture.js';

/** What the database holds outside pg_catalog: schemas, relations and functions by schema, advisory locks. */
async function inventory(db: TestDatabase) {
  const { rows } = await db.pool.query(`
    SELECT (SELECT coalesce(array_agg(nspname::text ORDER BY nspname), '{}') FROM pg_namespace
             WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema') AS schemas,
           (SELECT coalesce(jsonb_object_agg(s, n), '{}') FROM (SELECT n.nspname AS s, count(*) AS n FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname IN ('public', 'pgrekey') GROUP BY 1) x) AS relations,
           (SELECT coalesce(jsonb_object_agg(s, n), '{}') FROM (SELECT n.nspname AS s, count(*) AS n FROM pg_proc p
             JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname IN ('public', 'pgrekey') GROUP BY 1) x) AS functions,
           (SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())) AS "advisoryLocks"`);
  return rows[0];
}

describe('migrate through a connection pooler', () => {
  let db: TestDatabase;
  let pooler: ConnectionPooler;

  beforeAll(async () => {
    db = await createTestDatabase('migrate_pooler');
    // An install from nothing: the template comes migrated.
    await db.pool.query('DROP SCHEMA pgrekey CASCADE');
    await seedPeople(db.pool, 300);
  });
  afterAll(async () => {
    await pooler?.close();
    await db?.drop();
  });

  it('refuses a transaction-mode pool with exit 2, naming it, before writing anything', async () => {
    pooler = await startConnectionPooler(db.url, { mode: 'transaction', servers: 3 });
    const ws = await createWorkspace(pooler.url);
    try {
      const before = await inventory(db);
      const result = await ws.run(['migrate', 'up']);
      expectExit(result, 2);
      expect(result.stderr).toMatch(/connection pooler in transaction or statement mode/);
      expect(result.stderr).toMatch(/URL to PostgreSQL itself, or to a session-mode pool; nothing was written/);
      expect(await inventory(db)).toEqual(before);
      expect(before.schemas).not.toContain('pgrekey');
    } finally {
      await ws.cleanup();
      await pooler.close();
    }
  }, 120_000);

  it('gives up (exit 69) when the pool has no server for its check within the connect timeout, writing nothing', async () => {
    // One server, which the migrating connection itself keeps (session mode): the check's second connection waits.
    pooler = await startConnectionPooler(db.url, { mode: 'session', servers: 1 });
    const url = new URL(pooler.url);
    url.searchParams.set('connect_timeout', '2');
    const ws = await createWorkspace(url.toString());
    try {
      const before = await inventory(db);
      const started = Date.now();
      const result = await ws.run(['migrate', 'up']);
      expectExit(result, 69);
      expect(result.stderr).toMatch(/got no server session within 2 s \(a saturated connection pooler\?\)/);
      expect(Date.now() - started).toBeLessThan(20_000);
      expect(await inventory(db)).toEqual(before);
    } finally {
      await ws.cleanup();
      await pooler.close();
    }
  }, 120_000);

  it('migrates through a session-mode pool; rotate and verify then work through a transaction-mode one', async () => {
    pooler = await startConnectionPooler(db.url, { mode: 'session', servers: 3 });
    const session = await createWorkspace(pooler.url);
    try {
      expectExit(await session.run(['migrate', 'up']), 0);
      expectExit(await session.run(['target', 'add', '--table', 'public.people', '--columns', 'email,mobno', '--format', 'django-fernet-v1']), 0);
      expectExit(await session.run(['migrate', 'up']), 0);
    } finally {
      await pooler.close();
    }
    const installed = await inventory(db);
    expect(installed.schemas).toContain('pgrekey');
    expect(installed.functions.public).toBeUndefined();

    pooler = await startConnectionPooler(db.url, { mode: 'transaction', servers: 3 });
    try {
      const run = (args: string[]) => session.run(args, { env: { DATABASE_URL: pooler.url } });
      expectExit(await run(['rotate', '--workers', '2']), 0);
      expectExit(await run(['verify']), 0);
      expectExit(await run(['status']), 0);
      expect(await expectAllUnderKey(db.pool, 'new')).toBeGreaterThan(0);
    } finally {
      await session.cleanup();
    }
  }, 180_000);
});

it('a role limited to one connection still migrates directly: the check then has no room and gives way', async () => {
  const db = await createTestDatabase('migrate_connlimit');
  const role = `pgrekey_one_${randomBytes(4).toString('hex')}`;
  try {
    await db.pool.query('DROP SCHEMA pgrekey CASCADE');
    await db.pool.query(`CREATE ROLE ${role} LOGIN PASSWORD 'x' CONNECTION LIMIT 1; GRANT CREATE ON DATABASE "${db.name}" TO ${role}`);
    const url = new URL(db.url);
    url.username = role;
    url.password = 'x';
    const ws = await createWorkspace(url.toString());
    try {
      expectExit(await ws.run(['migrate', 'up']), 0);
      expect((await inventory(db)).schemas).toContain('pgrekey');
    } finally {
      await ws.cleanup();
    }
  } finally {
    await db.drop();
    await withAdminClient(adminUrl(), (admin) => admin.query(`DROP ROLE IF EXISTS ${role}`));
  }
}, 120_000);
