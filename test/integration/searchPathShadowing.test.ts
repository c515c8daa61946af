/**
 * pg-rekey's own functions run in sessions whose search_path pg-rekey does not
 * control: the reset trigger in the application's, the retire guard and the
 * audit trail's canonical text in whatever role runs pg-rekey. A schema placed
 * before pg_catalog (ALTER ROLE … SET search_path = evil, pg_catalog), or a
 * function with a more exact signature than the built-in's in any schema on
 * the path, must not change what they compute: their search_path is pinned.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asKeyVersionWriter, useTestDatabase } from '../helpers/database.js';
import { expectExit, prepareRotation, type RotationWorkspace } from '../helpers/rotationFixture.js';

const db = useTestDatabase('search_path');
let ws: RotationWorkspace;

beforeAll(async () => {
  ws = await prepareRotation(db.current.pool, db.current.url, 20);
  expectExit(await ws.run(['keys', 'add', 'old']), 0);
  // Look-alikes of the built-ins our functions call, each doing the wrong thing;
  // one schema each, so a test shadows only the function it is about.
  await db.current.pool.query(`
    CREATE SCHEMA evil_reset;
    CREATE FUNCTION evil_reset.jsonb_build_object(text, text) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
    CREATE SCHEMA evil_retire;
    CREATE FUNCTION evil_retire.format(text, regclass, name) RETURNS text LANGUAGE sql AS $$ SELECT 'SELECT false' $$;
    CREATE SCHEMA evil_history;
    CREATE FUNCTION evil_history.to_char(timestamp, text) RETURNS text LANGUAGE sql AS $$ SELECT 'shadowed' $$;`);
});
afterAll(() => ws?.cleanup());

/** Runs `fn` on one connection whose search_path puts the look-alikes of `schema` first. */
async function withShadowingSession<T>(schema: string, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await db.current.pool.connect();
  try {
    await client.query(`SET search_path = ${schema}, pg_catalog, public`);
    return await fn(client);
  } finally {
    await client.query('RESET search_path');
    client.release();
  }
}

describe('a search_path that shadows built-ins', () => {
  it('an application write still resets the key-version hint', async () => {
    await asKeyVersionWriter(db.current.pool, `UPDATE people SET email_key_version = (SELECT version FROM pgrekey.keys WHERE key_id = 'old') WHERE id = 1`);
    await withShadowingSession('evil_reset', (c) => c.query(`UPDATE people SET email = 'rewritten by the application' WHERE id = 1`));
    const row = await db.current.pool.query(`SELECT email_key_version AS v FROM people WHERE id = 1`);
    expect(row.rows[0].v).toBeNull();
  });

  it('the database still refuses to retire a key that rows reference', async () => {
    await asKeyVersionWriter(db.current.pool, `UPDATE people SET email_key_version = (SELECT version FROM pgrekey.keys WHERE key_id = 'old') WHERE id = 2`);
    const retire = withShadowingSession('evil_retire', (c) =>
      c.query(`UPDATE pgrekey.keys SET state = 'retired', retired_at = now() WHERE key_id = 'old'`),
    );
    await expect(retire).rejects.toMatchObject({ code: '23503' });
  });

  it('history --verify, run by a role with that search_path, finds the chain intact', async () => {
    await db.current.pool.query(`ALTER DATABASE ${db.current.name} SET search_path = evil_history, pg_catalog, public`);
    try {
      const result = await ws.run(['history', '--verify']);
      expectExit(result, 0);
      expect(result.stdout).toContain('Audit trail intact');
    } finally {
      await db.current.pool.query(`ALTER DATABASE ${db.current.name} RESET search_path`);
    }
  });

  it("pg-rekey's own statements call the built-ins, not a more exact look-alike in public on the default search_path", async () => {
    // format(text, VARIADIC "any") and array_agg(anynonarray) lose to these
    // exact matches wherever they sit on the path; on PostgreSQL 14 and older
    // any role may create them in public. Before pg_catalog. was written out,
    // rotate took its own key-version columns for the application's (exit 2).
    await db.current.pool.query(`
      CREATE FUNCTION public.format(text, text) RETURNS text LANGUAGE sql AS $$ SELECT 'public.nothing_here' $$;
      CREATE FUNCTION public.forget(text[], text) RETURNS text[] LANGUAGE sql AS $$ SELECT '{}'::text[] $$;
      CREATE AGGREGATE public.array_agg(text) (SFUNC = public.forget, STYPE = text[], INITCOND = '{}');`);
    try {
      expectExit(await ws.run(['migrate', 'up']), 0);
      // Exit 1: the first test left row 1's email in plaintext, a failure by design.
      const rotated = await ws.run(['rotate']);
      expectExit(rotated, 1);
      expect(rotated.stdout).toContain('failed 1');
      const left = await db.current.pool.query(
        `WITH new AS (SELECT version FROM pgrekey.keys WHERE key_id = 'new')
         SELECT count(*)::int AS n FROM people, new
          WHERE (email IS NOT NULL AND id <> 1 AND email_key_version IS DISTINCT FROM new.version)
             OR (mobno IS NOT NULL AND mobno_key_version IS DISTINCT FROM new.version)`,
      );
      expect(left.rows).toEqual([{ n: 0 }]);
    } finally {
      await db.current.pool.query(`DROP FUNCTION public.format(text, text); DROP AGGREGATE public.array_agg(text); DROP FUNCTION public.forget(text[], text);`);
    }
  });
});
