/**
 * A partitioned table as a target. Its index cannot be built CONCURRENTLY, so
 * the target migration indexes every partition CONCURRENTLY and attaches the
 * indexes level by level (sub-partitions included); the rotation then runs
 * through the partitioned table like any other. A partition created between
 * `target add` and `migrate up` is caught with what to do. A table with
 * classic (INHERITS) children is refused: its key does not span them.
 */
import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import '../helpers/provided.js';
import { useTestDatabase } from '../helpers/database.js';
import {
  bothKeysCodec,
  countRewrites,
  createWorkspace,
  expectAllUnderKey,
  expectEachRewrittenOnce,
  expectExit,
  seedPeople,
  type RotationWorkspace,
} from '../helpers/rotationFixture.js';

const db = useTestDatabase('partitioned');
let ws: RotationWorkspace;
const ROWS = 3000;
/** Partitioned targets need PostgreSQL 18: NOT VALID foreign keys on a partitioned table. */
const PARTITIONS_SUPPORTED = inject('pgServerVersionNum') >= 180000;

/** Every key-version index of `table`'s partition tree: its table and whether it is valid. */
async function keyVersionIndexes(table: string): Promise<{ tbl: string; idx: string; valid: boolean }[]> {
  const { rows } = await db.current.pool.query<{ tbl: string; idx: string; valid: boolean }>(
    `SELECT x.indrelid::regclass::text AS tbl, x.indexrelid::regclass::text AS idx, x.indisvalid AS valid
       FROM pg_partition_tree($1::regclass) t
       JOIN pg_index x ON x.indrelid = t.relid
       JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]
      WHERE a.attname LIKE '%\\_key\\_version'
      ORDER BY 1, 2`,
    [table],
  );
  return rows;
}

beforeAll(async () => {
  const pool = db.current.pool;
  // people, range-partitioned by id: one plain partition, one hash-partitioned in two.
  await seedPeople(pool, ROWS, { table: 'people_seed' });
  await pool.query(`
    CREATE TABLE people (id bigint PRIMARY KEY, name text NOT NULL, email text, mobno text) PARTITION BY RANGE (id);
    CREATE TABLE people_low PARTITION OF people FOR VALUES FROM (MINVALUE) TO (1001);
    CREATE TABLE people_high PARTITION OF people FOR VALUES FROM (1001) TO (MAXVALUE) PARTITION BY HASH (id);
    CREATE TABLE people_high_0 PARTITION OF people_high FOR VALUES WITH (MODULUS 2, REMAINDER 0);
    CREATE TABLE people_high_1 PARTITION OF people_high FOR VALUES WITH (MODULUS 2, REMAINDER 1);
    INSERT INTO people SELECT * FROM people_seed;
    DROP TABLE people_seed;
    -- As autovacuum does: the leaves are analysed, the partitioned table never is.
    ANALYZE people_low, people_high_0, people_high_1;`);
  ws = await createWorkspace(db.current.url);
  expectExit(await ws.run(['migrate', 'up']), 0);
}, 60_000);

afterAll(() => ws?.cleanup());

describe.runIf(!PARTITIONS_SUPPORTED)('a partitioned target, before PostgreSQL 18', () => {
  it('is refused by target add (exit 2), saying why and what to do; nothing is written', async () => {
    const added = await ws.run(['target', 'add', '--table', 'public.people', '--columns', 'email,mobno', '--format', 'django-fernet-v1']);
    expectExit(added, 2);
    expect(added.stderr).toMatch(/public\.people is partitioned, and before PostgreSQL 18 \(this server is \d+\) a foreign key on a partitioned table cannot be added NOT VALID/);
    expect(added.stderr).toMatch(/Upgrade to PostgreSQL 18/);
    expect(await readdir(path.join(ws.dir, 'migrations')).catch(() => [])).toEqual([]);
  });
});

describe.runIf(PARTITIONS_SUPPORTED)('a partitioned target', () => {
  it('migrates lock-safely: every partition indexed CONCURRENTLY and attached, foreign keys validated', async () => {
    const added = await ws.run(['target', 'add', '--table', 'public.people', '--columns', 'email,mobno', '--format', 'django-fernet-v1', '--json']);
    expectExit(added, 0);
    const up: string[] = JSON.parse(added.stdout).migration.up;
    expect(up).toContain('CREATE INDEX IF NOT EXISTS "people_email_07f377_kv_idx" ON ONLY "public"."people" ("email_key_version")');
    expect(up).toContain('CREATE INDEX IF NOT EXISTS "people_high_email_34fa3a_kv_idx" ON ONLY "public"."people_high" ("email_key_version")');
    expect(up).toContain('CREATE INDEX CONCURRENTLY IF NOT EXISTS "people_high_1_email_ae800c_kv_idx" ON "public"."people_high_1" ("email_key_version")');
    expect(up).toContain('ALTER INDEX "public"."people_high_email_34fa3a_kv_idx" ATTACH PARTITION "public"."people_high_1_email_ae800c_kv_idx"');

    expectExit(await ws.run(['migrate', 'up']), 0);
    const indexes = await keyVersionIndexes('people');
    expect(indexes.map((i) => i.tbl)).toEqual(
      ['people', 'people_high', 'people_high_0', 'people_high_1', 'people_low'].flatMap((t) => [t, t]),
    );
    // The root index is valid only once every partition's index is attached.
    expect(indexes.every((i) => i.valid)).toBe(true);
    const fks = await db.current.pool.query<{ tbl: string; validated: boolean }>(
      `SELECT conrelid::regclass::text AS tbl, bool_and(convalidated) AS validated FROM pg_constraint
        WHERE contype = 'f' AND confrelid = 'pgrekey.keys'::regclass GROUP BY 1 ORDER BY 1`,
    );
    expect(fks.rows).toEqual(['people', 'people_high', 'people_high_0', 'people_high_1', 'people_low'].map((tbl) => ({ tbl, validated: true })));
  });

  it('rotates every row exactly once, and an application write on a partition is picked up by the next run', async () => {
    await countRewrites(db.current.pool);
    const result = await ws.run(['rotate', '--json', '--batch-size', '250', '--workers', '2']);
    expectExit(result, 0);
    const summary = JSON.parse(result.stdout);
    expect(summary).toMatchObject({ status: 'succeeded', examined: ROWS, failed: 0 });
    // Planned from the leaves' estimates (the partitioned table's own is -1): several ranges, the right total.
    const plan = await db.current.pool.query<{ ranges: number; estimated: number }>(
      'SELECT count(*)::int AS ranges, sum(estimated_rows)::int AS estimated FROM pgrekey.ranges WHERE run_id = $1',
      [summary.runId],
    );
    expect(plan.rows[0]).toEqual({ ranges: 3, estimated: ROWS });
    expect(await expectAllUnderKey(db.current.pool, 'new')).toBe(ROWS);
    await expectEachRewrittenOnce(db.current.pool, ROWS);

    // The application rewrites a row behind the rotator with the old key: the
    // reset trigger (cloned to the partitions) marks it unknown, the next run fixes it.
    const codec = await bothKeysCodec();
    await db.current.pool.query(`UPDATE people SET email = $1 WHERE id = 2001`, [codec.encrypt('user2001@example.com', { keyId: 'old' })]);
    const reset = await db.current.pool.query(`SELECT email_key_version FROM people WHERE id = 2001`);
    expect(reset.rows[0].email_key_version).toBeNull();
    const again = await ws.run(['rotate', '--json']);
    expectExit(again, 0);
    expect(JSON.parse(again.stdout).changed).toBe(1);
    expect(await expectAllUnderKey(db.current.pool, 'new')).toBe(ROWS);
    // verify reads it whole, and in sampled windows across the partitions.
    expectExit(await ws.run(['verify']), 0);
    const sampled = await ws.run(['verify', '--sample', '500', '--json']);
    expectExit(sampled, 0);
    expect(JSON.parse(sampled.stdout).status).toBe('succeeded');
  });

  it('a partition created after the migration gets its index and foreign key from the table', async () => {
    await db.current.pool.query(`ALTER TABLE people DETACH PARTITION people_high`);
    await db.current.pool.query(`CREATE TABLE people_top PARTITION OF people FOR VALUES FROM (1001) TO (MAXVALUE)`);
    const top = (await keyVersionIndexes('people')).filter((i) => i.tbl === 'people_top');
    expect(top).toHaveLength(2);
    expect(top.every((i) => i.valid)).toBe(true);
  });

  it('a partition created between "target add" and "migrate up" stops the migration with what to do; redoing it completes', async () => {
    const pool = db.current.pool;
    // One partition in another schema: its index is created and attached there.
    await pool.query(`
      CREATE SCHEMA archive;
      CREATE TABLE events (id bigint PRIMARY KEY, email text) PARTITION BY RANGE (id);
      CREATE TABLE archive.events_1 PARTITION OF events FOR VALUES FROM (1) TO (1000);`);
    expectExit(await ws.run(['target', 'add', '--table', 'public.events', '--columns', 'email', '--format', 'django-fernet-v1']), 0);
    await pool.query(`CREATE TABLE events_2 PARTITION OF events FOR VALUES FROM (1000) TO (2000)`);

    const failed = await ws.run(['migrate', 'up']);
    expect(failed.code).not.toBe(0);
    expect(failed.stderr).toMatch(/index "public"\."events_email_be9cca_kv_idx" is incomplete: a partition of "public"\."events" was created after this migration was written/);
    expect(failed.stderr).toMatch(/delete this migration file, run "pg-rekey target add" again/);
    expect((await keyVersionIndexes('events')).find((i) => i.tbl === 'events')?.valid).toBe(false);

    // The hint, followed.
    const dir = path.join(ws.dir, 'migrations');
    const files = [];
    for (const f of await readdir(dir)) if ((await readFile(path.join(dir, f), 'utf8')).includes('"table":"events"')) files.push(f);
    expect(files).toHaveLength(1);
    await rm(path.join(dir, files[0]!));
    expectExit(await ws.run(['target', 'add', '--table', 'public.events', '--columns', 'email', '--format', 'django-fernet-v1']), 0);
    expectExit(await ws.run(['migrate', 'up']), 0);
    const events = await keyVersionIndexes('events');
    expect(events.map((i) => [i.tbl, i.idx])).toEqual([
      ['archive.events_1', 'archive.events_1_email_9100f4_kv_idx'],
      ['events', 'events_email_be9cca_kv_idx'],
      ['events_2', 'events_2_email_a547e8_kv_idx'],
    ]);
    expect(events.every((i) => i.valid)).toBe(true);

    // And down again: the partitioned index (with its partitions'), the trigger and the columns go.
    expectExit(await ws.run(['migrate', 'down']), 0);
    expect(await keyVersionIndexes('events')).toEqual([]);
    const left = await pool.query(
      `SELECT count(*)::int AS n FROM pg_attribute WHERE attrelid IN ('events'::regclass, 'archive.events_1'::regclass, 'events_2'::regclass)
          AND attname = 'email_key_version' AND NOT attisdropped`,
    );
    expect(left.rows[0].n).toBe(0);
  });
});

describe('classic table inheritance', () => {
  it('a table with inheritance children is refused (its key does not span them); a child alone is a fine target', async () => {
    await db.current.pool.query(`
      CREATE TABLE contacts (id bigint PRIMARY KEY, email text);
      CREATE TABLE contacts_archived () INHERITS (contacts);`);
    const refused = await ws.run(['target', 'add', '--table', 'public.contacts', '--columns', 'email', '--format', 'django-fernet-v1']);
    expectExit(refused, 2);
    expect(refused.stderr).toContain('public.contacts has inheritance children (contacts_archived)');
    await db.current.pool.query(`ALTER TABLE contacts_archived ADD PRIMARY KEY (id)`);
    expectExit(await ws.run(['target', 'add', '--table', 'public.contacts_archived', '--columns', 'email', '--format', 'django-fernet-v1', '--dry-run']), 0);
  });
});
