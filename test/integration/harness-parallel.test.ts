/**
 * Sibling of harness.test.ts: runs in another worker at the same time and
 * creates the same table name, proving per-file databases do not collide.
 */

import { expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database.js';
import { assertOnlyOwnTables } from './harnessShared.js';

const db = useTestDatabase('parallel');

it('has a database of its own, empty of the other file\'s tables', async () => {
  await assertOnlyOwnTables(db.current.pool, 'harness-parallel.test.ts');
  const { rows } = await db.current.pool.query<{ db: string }>('select current_database() as db');
  expect(rows[0]?.db).toBe(db.current.name);
});

it('drops its database on drop(), even with a client still connected', async () => {
  const { createTestDatabase, adminUrl } = await import('../helpers/database.js');
  const extra = await createTestDatabase('dropme');
  const pg = (await import('pg')).default;
  const leaked = new pg.Client(extra.url);
  leaked.on('error', () => {}); // DROP … WITH (FORCE) terminates it
  await leaked.connect();
  await extra.drop();
  const admin = new pg.Client(adminUrl());
  await admin.connect();
  try {
    const { rowCount } = await admin.query('select 1 from pg_database where datname = $1', [extra.name]);
    expect(rowCount).toBe(0);
  } finally {
    await admin.end();
    await leaked.end().catch(() => {});
  }
});
