/**
 * verify of large encrypted values (documents): a page of rows carries a
 * bounded number of value bytes, as a rotation's batch does. At 2,000 rows per
 * cursor page (the default then), rows of ~1 MB made pages of ~2 GB of strings and verify died of
 * a V8 heap OOM. Staged cheaply: values of ~180 kB under a budget of a few of
 * them (or less than one), through the library (readAllRows, readSampleRows,
 * runVerify) so each page can be seen as it is handed on.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCodec } from '../../src/crypto/createCodec.js';
import type { ReadRow } from '../../src/rotation/readRows.js';
import { listRegisteredKeys } from '../../src/schema/registry.js';
import { resolveTarget, type ResolvedTarget } from '../../src/schema/resolveTarget.js';
import { readAllRows, readSampleRows } from '../../src/verify/readTarget.js';
import { runVerify } from '../../src/verify/verify.js';
import { asKeyVersionWriter, useTestDatabase } from '../helpers/database.js';
import { bothKeysCodec, expectExit, prepareRotation, type RotationWorkspace } from '../helpers/rotationFixture.js';

const db = useTestDatabase('verify_large');
let ws: RotationWorkspace;
let target: ResolvedTarget;
let docBytes = 0;

const KIB = 1024;
const ROWS = 60;
/** Rows 1–50 hold a document as their email; 51–60 keep their small values. */
const isDocument = (id: number) => id <= 50;
/** Problem rows among the documents. */
const PLAINTEXT = 7;
const FOREIGN = 13;
const MISMATCHED = 21;

/** The plaintext of a large email value (a document stand-in): ~100 kB, ~180 kB stored. */
const documentOf = (id: number) => `document ${id} ${'lorem ipsum '.repeat(8500)}`;

/** A page as handed on: its row ids and value bytes. */
interface Page {
  ids: number[];
  bytes: number;
}

const recordPages = (pages: Page[]) => (rows: ReadRow[]) => {
  let bytes = 0;
  for (const row of rows) for (const v of row.values) bytes += v?.length ?? 0;
  pages.push({ ids: rows.map((r) => Number(r.key[0])), bytes });
};

/** Each page stays within `budget` value bytes, or is a single row. */
function expectWithinBudget(pages: readonly Page[], budget: number): void {
  for (const p of pages) expect({ first: p.ids[0], rows: p.ids.length, within: p.bytes <= budget || p.ids.length === 1 }).toMatchObject({ within: true });
}

/** Runs `f` on a connection of its own, as verify reads on one. */
async function withClient<T>(f: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await db.current.pool.connect();
  try {
    return await f(client);
  } finally {
    client.release();
  }
}

const ids = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('verify of large values', () => {
  beforeAll(async () => {
    const pool = db.current.pool;
    ws = await prepareRotation(pool, db.current.url, ROWS);
    expectExit(await ws.run(['keys', 'add', 'new']), 0);
    expectExit(await ws.run(['keys', 'add', 'old']), 0);
    const codec = await bothKeysCodec();
    const foreign = await createCodec({
      format: 'django-fernet-v1',
      keys: [{ id: 'elsewhere', secret: 'env:S' }],
      env: { S: 'django-insecure-an0ther-app-key-not-configured-here!' },
    });
    const docIds = ids(1, ROWS).filter(isDocument);
    docBytes = codec.encrypt(documentOf(1), { keyId: 'old' }).length;
    // The plaintext one is as long as the others, so that all pages of documents have the same size.
    const docs = docIds.map((id) =>
      id === PLAINTEXT ? documentOf(id).padEnd(docBytes, '.') : id === FOREIGN ? foreign.encrypt(documentOf(id)) : codec.encrypt(documentOf(id), { keyId: 'old' }),
    );
    await pool.query(`UPDATE people p SET email = u.e FROM unnest($1::bigint[], $2::text[]) AS u(id, e) WHERE p.id = u.id`, [docIds, docs]);
    // Documents only (the sample reads windows from anywhere in it): people's first 50 rows.
    await pool.query(`CREATE TABLE documents (LIKE people INCLUDING ALL)`);
    await pool.query(`INSERT INTO documents SELECT * FROM people WHERE id <= 50`);
    // A wrong hint: it names "new" for a document under "old".
    await asKeyVersionWriter(pool, `UPDATE people SET email_key_version = (SELECT version FROM pgrekey.keys WHERE key_id = 'new') WHERE id = $1`, [MISMATCHED]);
    await pool.query('ANALYZE people, documents');
    target = await resolveTarget(
      pool,
      { schema: 'public', table: 'people', key: undefined, columns: ['email', 'mobno'], format: 'django-fernet-v1' },
      { requireVersionColumns: true, registrySchema: 'pgrekey' },
    );
  }, 120_000);
  afterAll(() => ws?.cleanup());

  it('a full scan reads pages within the byte budget, every row once, across chunk boundaries', async () => {
    const budget = 1024 * KIB;
    // The budget holds five documents.
    expect(Math.floor(budget / docBytes)).toBe(5);
    const pages: Page[] = [];
    // Chunks of 12 rows: pages of five end inside them, and the small rows after the documents finish the scan.
    expect(await withClient((c) => readAllRows(c, target, recordPages(pages), { chunkRows: 12, pageMaxBytes: budget }))).toBe(ROWS);
    expect(pages.flatMap((p) => p.ids)).toEqual(ids(1, ROWS));
    expectWithinBudget(pages, budget);
    const documentPages = pages.filter((p) => p.ids.some(isDocument));
    expect(Math.max(...documentPages.map((p) => p.ids.length))).toBeLessThanOrEqual(5);
  }, 60_000);

  it('a row larger than the budget is read and verified, in a page of its own', async () => {
    const budget = 64 * KIB;
    expect(docBytes).toBeGreaterThan(budget);
    const pages: Page[] = [];
    expect(await withClient((c) => readAllRows(c, target, recordPages(pages), { pageMaxBytes: budget }))).toBe(ROWS);
    expect(pages.flatMap((p) => p.ids)).toEqual(ids(1, ROWS));
    expect(pages.filter((p) => p.ids.some(isDocument)).map((p) => p.ids)).toEqual(ids(1, 50).map((id) => [id]));
  }, 60_000);

  it('runVerify counts and names exactly the same values as with unbounded pages, page by page within the budget', async () => {
    const verifyWith = async (pageMaxBytes: number | undefined) => {
      const pages: number[] = [];
      let seen = 0;
      const outcome = await runVerify({
        pool: db.current.pool,
        schema: 'pgrekey',
        actor: { osUser: 'test', host: 'test' },
        targets: [target],
        codecs: new Map([[target.name, await bothKeysCodec()]]),
        registry: await listRegisteredKeys(db.current.pool, 'pgrekey'),
        without: [],
        sourceKeys: ['new', 'old'],
        pageMaxBytes,
        onProgress: (_t, rows) => {
          pages.push(rows - seen);
          seen = rows;
        },
      });
      return { outcome, pages };
    };
    const budget = 1024 * KIB;
    const { outcome, pages } = await verifyWith(budget);
    expect(outcome).toMatchObject({ status: 'failed', examined: ROWS, problems: 3, findingsDropped: 0 });
    const email = outcome.columns.find((c) => c.column === 'email')!;
    expect(email).toMatchObject({ rows: ROWS, nulls: 0, plaintext: 1, byKey: { old: ROWS - 2 } });
    expect(Object.values(email.failed).reduce((a, b) => a + (b ?? 0), 0)).toBe(1);
    expect(email.versions).toMatchObject({ mismatched: 1, unknown: ROWS - 3, agree: 0 });
    const findings = outcome.findings.map((f) => ({ id: Number(f.rowKey.id), column: f.column, reason: f.reason }));
    expect(findings.map((f) => f.id).sort((a, b) => a - b)).toEqual([PLAINTEXT, FOREIGN, MISMATCHED]);
    expect(findings.find((f) => f.id === MISMATCHED)).toMatchObject({ reason: 'version-mismatch' });
    expect(findings.find((f) => f.id === PLAINTEXT)).toMatchObject({ reason: 'plaintext' });
    // The documents went five at a time at most; the run counts the same as one with the default budget.
    expect(pages.reduce((a, b) => a + b, 0)).toBe(ROWS);
    expect(Math.max(...pages.slice(0, 10))).toBeLessThanOrEqual(5);
    const unbounded = await verifyWith(undefined);
    expect(unbounded.pages).toEqual([ROWS]);
    expect({ columns: unbounded.outcome.columns, findings: unbounded.outcome.findings }).toEqual({ columns: outcome.columns, findings: outcome.findings });
  }, 60_000);

  it('rows of a few hundred bytes keep pages of 500 rows: the budget never cuts them', async () => {
    // Values as long as the reference workload's (they need not decrypt to be read).
    await db.current.pool.query(`CREATE TABLE small (LIKE people INCLUDING ALL)`);
    await db.current.pool.query(`INSERT INTO small (id, name, email, mobno) SELECT i, 'name', repeat('x', 240), repeat('y', 200) FROM generate_series(1, 4700) AS i`);
    const small: ResolvedTarget = { ...target, name: 'public.small', table: 'small' };
    const pages: Page[] = [];
    expect(await withClient((c) => readAllRows(c, small, recordPages(pages)))).toBe(4700);
    expect(pages.map((p) => p.ids.length)).toEqual([...Array<number>(9).fill(500), 200]);
    expect(pages.flatMap((p) => p.ids)).toEqual(ids(1, 4700));
  }, 60_000);

  it('--sample windows of documents are handed on in pieces within the budget, no row twice', async () => {
    const budget = 1024 * KIB;
    const documents: ResolvedTarget = { ...target, name: 'public.documents', table: 'documents' };
    for (const seed of [1, 2, 3]) {
      const pages: Page[] = [];
      // 30 of 50 rows: a window of 30 after a random start, and whatever it misses from the gaps.
      const report = await withClient((c) => readSampleRows(c, documents, { rows: 30 }, seed, recordPages(pages), { pageMaxBytes: budget }));
      expect(report).toMatchObject({ method: 'keyset-windows', requestedRows: 30, rowsChecked: 30 });
      expect(report.windows.reduce((n, w) => n + w.rows, 0)).toBe(30);
      const read = pages.flatMap((p) => p.ids);
      expect(read).toHaveLength(30);
      expect(new Set(read).size).toBe(30);
      expectWithinBudget(pages, budget);
      expect(Math.max(...pages.map((p) => p.ids.length))).toBeLessThanOrEqual(5);
    }
  }, 60_000);
});
