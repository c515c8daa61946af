/**
 * Large encrypted values (documents): a batch carries a bounded number of value
 * bytes, whatever --batch-size says. At --batch-size 1000, rows of ~1 MB made
 * one compare-and-swap UPDATE parameter of ~1 GB, which node-postgres could not
 * build and PostgreSQL refuses (exit 70). Staged cheaply: values of ~180 kB
 * under a budget of a few of them, through the library (runRotation,
 * dryRunTarget) so each batch can be seen as it is transformed.
 */
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { dryRunTarget } from '../../src/rotation/dryRun.js';
import { runRotation, type RotationSettings } from '../../src/rotation/rotate.js';
import type { BatchTransformer } from '../../src/rotation/rotateRange.js';
import { batchLength, type ReadBatch } from '../../src/rotation/readRows.js';
import { transformBatch } from '../../src/rotation/transformBatch.js';
import { bothKeysCodec, countRewrites, expectEachRewrittenOnce, expectExit, plaintextsOf, useFreshRotations, peopleRunParts, rotationSettings as settings } from '../helpers/rotationFixture.js';

const fresh = useFreshRotations();

const KIB = 1024;


/** The plaintext of a large email value (a document stand-in): ~100 kB, ~180 kB stored. */
const documentOf = (id: number) => `document ${id} ${'lorem ipsum '.repeat(8500)}`;

/**
 * `rows` people with both keys registered, whose emails in `large` are
 * documents under the old key; a transform that records each batch's rows and
 * value bytes.
 */
async function largeRotation(label: string, rows: number, large: (id: number) => boolean) {
  const { db, ws } = await fresh(label, rows);
  expectExit(await ws.run(['keys', 'add', 'new']), 0);
  expectExit(await ws.run(['keys', 'add', 'old']), 0);
  const codec = await bothKeysCodec();
  const ids = Array.from({ length: rows }, (_, i) => i + 1).filter(large);
  const docs = ids.map((id) => codec.encrypt(documentOf(id), { keyId: 'old' }));
  await db.pool.query(`UPDATE people p SET email = u.e FROM unnest($1::bigint[], $2::text[]) AS u(id, e) WHERE p.id = u.id`, [ids, docs]);
  const { target, version, startRun } = await peopleRunParts(db.pool);
  const batches: { ids: number[]; bytes: number }[] = [];
  const transform: BatchTransformer = async (_t, batch: ReadBatch) => {
    let bytes = 0;
    for (const column of batch.values) for (const v of column) bytes += v?.length ?? 0;
    batches.push({ ids: batch.keys[0]!.map(Number), bytes });
    return transformBatch(batch, { codec, targetKeyId: 'new', targetVersion: version });
  };
  const rotate = async (over: Partial<RotationSettings>, through: BatchTransformer = transform) => {
    const run = await startRun();
    return runRotation({ pool: db.pool, schema: 'pgrekey', targetVersion: version, targets: [target], runId: run.id, transform: through, settings: settings(over), owner: 'p' });
  };
  return { db, target, version, transform, batches, rotate, docBytes: docs[0]!.length };
}

/** Every row holds its plaintexts (a document where `large`) under the new key, with its key version. */
async function expectAllRotated(pool: pg.Pool, rows: number, large: (id: number) => boolean): Promise<void> {
  const codec = await bothKeysCodec();
  const { rows: stored } = await pool.query<{ id: string; email: string; mobno: string | null; ev: string | null; mv: string | null }>(
    `SELECT p.id, p.email, p.mobno, ek.key_id AS ev, mk.key_id AS mv FROM people p
       LEFT JOIN pgrekey.keys ek ON ek.version = p.email_key_version
       LEFT JOIN pgrekey.keys mk ON mk.version = p.mobno_key_version ORDER BY p.id`,
  );
  expect(stored).toHaveLength(rows);
  for (const row of stored) {
    const id = Number(row.id);
    const email = codec.decrypt(row.email);
    const wrong = { id, email: email.plaintext === (large(id) ? documentOf(id) : plaintextsOf(id).email), keyId: email.keyId, ev: row.ev };
    expect(wrong).toEqual({ id, email: true, keyId: 'new', ev: 'new' });
    if (row.mobno !== null) expect({ id, keyId: codec.decrypt(row.mobno).keyId, mv: row.mv }).toEqual({ id, keyId: 'new', mv: 'new' });
  }
}

/** Each batch stays within `budget` value bytes, or is a single row. */
function expectWithinBudget(batches: readonly { ids: number[]; bytes: number }[], budget: number): void {
  for (const b of batches) expect({ first: b.ids[0], rows: b.ids.length, within: b.bytes <= budget || b.ids.length === 1 }).toMatchObject({ within: true });
}

describe('a batch of large values', () => {
  it('shrinks to the byte budget: every row rotates exactly once, in batches below --batch-size', async () => {
    const rows = 40;
    const all = () => true;
    const { db, batches, rotate, docBytes } = await largeRotation('large_shrink', rows, all);
    await countRewrites(db.pool);
    const budget = 1024 * KIB;
    const outcome = await rotate({ batchSize: 100, batchMaxBytes: budget });
    expect(outcome).toMatchObject({ status: 'succeeded', examined: rows, failed: 0, conflicted: 0 });
    expectWithinBudget(batches, budget);
    // The budget holds five documents: the range went in batches of about that many.
    expect(Math.floor(budget / docBytes)).toBe(5);
    expect(batches.length).toBeGreaterThanOrEqual(Math.ceil(rows / 5));
    expect(batches.flatMap((b) => b.ids)).toEqual(Array.from({ length: rows }, (_, i) => i + 1));
    const committed = await db.pool.query(`SELECT sum(batches_committed)::int AS n FROM pgrekey.ranges WHERE run_id = $1`, [outcome.runId]);
    expect(committed.rows[0]).toEqual({ n: batches.length });
    await expectEachRewrittenOnce(db.pool, rows);
    await expectAllRotated(db.pool, rows, all);
  }, 120_000);

  it('does not end its range early: small rows after large ones (batches below --batch-size) are all rotated', async () => {
    // Small rows, a stretch of documents, small rows again: the read after the
    // small rows asks for a full batch, meets the documents and is cut; the
    // next reads are a few rows each (below --batch-size) with rows left after them.
    const rows = 200;
    const large = (id: number) => id > 40 && id <= 60;
    const { db, batches, rotate } = await largeRotation('large_not_early', rows, large);
    await countRewrites(db.pool);
    const budget = 1024 * KIB;
    const outcome = await rotate({ batchSize: 50, batchMaxBytes: budget });
    expect(outcome).toMatchObject({ status: 'succeeded', examined: rows, changed: rows, failed: 0, conflicted: 0 });
    expectWithinBudget(batches, budget);
    expect(batches.some((b) => b.ids.length < 50 && b.ids.at(-1)! < rows)).toBe(true);
    const ranges = await db.pool.query(`SELECT status, count(*)::int AS n FROM pgrekey.ranges WHERE run_id = $1 GROUP BY status`, [outcome.runId]);
    expect(ranges.rows).toEqual([{ status: 'done', n: ranges.rows[0]!.n }]);
    await expectEachRewrittenOnce(db.pool, rows);
    await expectAllRotated(db.pool, rows, large);
  }, 120_000);

  it('does not end its range early when rows read again fill the budget: the keyset waits a batch', async () => {
    const rows = 30;
    const all = () => true;
    const { db, batches, transform, rotate } = await largeRotation('large_recheck', rows, all);
    await countRewrites(db.pool);
    // The application renames every row of the first batch between its read
    // and its write: they all lose the compare-and-swap, and reading them
    // again fills the next batch's budget, so it reads no keyset row.
    let raced = false;
    const racing: BatchTransformer = async (t, batch) => {
      if (!raced) {
        raced = true;
        await db.pool.query(`UPDATE people SET name = name || '!' WHERE id = ANY($1::bigint[])`, [batch.keys[0]]);
      }
      return transform(t, batch);
    };
    const budget = 1024 * KIB;
    const outcome = await rotate({ batchSize: 100, batchMaxBytes: budget }, racing);
    expect(outcome).toMatchObject({ status: 'succeeded', changed: rows, failed: 0, conflicted: 0 });
    expectWithinBudget(batches, budget);
    expect(batches[0]!.ids.length).toBeLessThan(rows);
    expect(batches[1]!.ids).toEqual(batches[0]!.ids);
    await expectEachRewrittenOnce(db.pool, rows);
    await expectAllRotated(db.pool, rows, all);
  }, 120_000);

  it('a row larger than the budget rotates, in a batch of its own', async () => {
    const rows = 30;
    const large = (id: number) => id === 5 || id === 6;
    const { db, batches, rotate, docBytes } = await largeRotation('large_single', rows, large);
    await countRewrites(db.pool);
    const budget = 64 * KIB;
    expect(docBytes).toBeGreaterThan(budget);
    const outcome = await rotate({ batchSize: 100, batchMaxBytes: budget });
    expect(outcome).toMatchObject({ status: 'succeeded', examined: rows, changed: rows, failed: 0 });
    expectWithinBudget(batches, budget);
    expect(batches.filter((b) => b.ids.includes(5) || b.ids.includes(6)).map((b) => b.ids)).toEqual([[5], [6]]);
    await expectEachRewrittenOnce(db.pool, rows);
    await expectAllRotated(db.pool, rows, large);
  }, 120_000);

  it('in a dry run, shrinks the same way and still reads every row', async () => {
    const rows = 40;
    const large = (id: number) => id > 10 && id <= 30;
    const { db, batches, transform, target, version } = await largeRotation('large_dry_run', rows, large);
    const budget = 1024 * KIB;
    const report = await dryRunTarget(db.pool, target, version, 100, transform, undefined, budget);
    expect(report).toMatchObject({ complete: true, examined: rows, wouldChange: { email: { old: rows } } });
    expectWithinBudget(batches, budget);
    expect(batches.length).toBeGreaterThan(4);
    expect(batches.flatMap((b) => b.ids)).toEqual(Array.from({ length: rows }, (_, i) => i + 1));
  }, 120_000);
});
