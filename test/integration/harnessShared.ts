/**
 * Shared body of harness.test.ts and harness-parallel.test.ts: both create a
 * table of the same name in "their" database. If the two files shared a
 * database, one CREATE TABLE would fail (42P07) or one would see the other's
 * marker row.
 */

import type pg from 'pg';
import { expect } from 'vitest';

/**
 * Asserts the database holds no user tables yet (pg-rekey's own schema, which the
 * template carries, aside), then claims it with a marker row.
 */
export async function assertOnlyOwnTables(pool: pg.Pool, marker: string): Promise<void> {
  const before = await pool.query<{ name: string }>(
    `select relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema', 'pgrekey')`,
  );
  expect(before.rows).toEqual([]);
  await pool.query('create table harness_collide (marker text not null)');
  await pool.query('insert into harness_collide values ($1)', [marker]);
  const { rows } = await pool.query<{ marker: string }>('select marker from harness_collide');
  expect(rows).toEqual([{ marker }]);
}
