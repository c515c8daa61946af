/**
 * A verify sample that covers the whole table (`--sample-percent 100`, or a
 * `--sample` at least the table's size) is read as a full scan: it must be cut
 * into `--chunk-rows` read-only transactions as the full scan is (DESIGN §3: no
 * read holds a snapshot for longer than a chunk). Before, it fell back to the
 * default chunk of 10,000 rows whatever --chunk-rows said. Seen through
 * runVerify, counting the READ ONLY transactions its connections begin.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool } from '../../src/db/pool.js';
import { listRegisteredKeys } from '../../src/schema/registry.js';
import { resolveTarget, type ResolvedTarget } from '../../src/schema/resolveTarget.js';
import type { SampleSpec } from '../../src/verify/readTarget.js';
import { runVerify } from '../../src/verify/verify.js';
import { useTestDatabase } from '../helpers/database.js';
import { bothKeysCodec, prepareRotation, type RotationWorkspace } from '../helpers/rotationFixture.js';

const db = useTestDatabase('verify_sample_full');
let ws: RotationWorkspace;
let target: ResolvedTarget;
const ROWS = 60;
const CHUNK_ROWS = 12;

/** Runs verify on a pool of its own; returns its outcome, the rows of each page, and the READ ONLY transactions begun. */
async function verifyCounting(options: { sample?: SampleSpec; chunkRows: number }) {
  const pool = createPool(db.current.url, { applicationName: 'pg-rekey-test-verify' });
  let readOnlyTransactions = 0;
  pool.on('connect', (client: pg.PoolClient) => {
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
      if (typeof args[0] === 'string' && /^BEGIN\b.*\bREAD ONLY\b/.test(args[0])) readOnlyTransactions++;
      return query(...args);
    };
  });
  const pages: number[] = [];
  let seen = 0;
  try {
    const outcome = await runVerify({
      pool,
      schema: 'pgrekey',
      actor: { osUser: 'test', host: 'test' },
      targets: [target],
      codecs: new Map([[target.name, await bothKeysCodec()]]),
      registry: await listRegisteredKeys(pool, 'pgrekey'),
      without: [],
      sourceKeys: ['new', 'old'],
      sample: options.sample ?? null,
      seed: 1,
      chunkRows: options.chunkRows,
      onProgress: (_t, rows) => {
        pages.push(rows - seen);
        seen = rows;
      },
    });
    return { outcome, pages, readOnlyTransactions };
  } finally {
    await pool.end();
  }
}

describe('verify: a sample that covers the whole table', () => {
  beforeAll(async () => {
    ws = await prepareRotation(db.current.pool, db.current.url, ROWS);
    // The sample is sized from the planner's estimate: make it exact.
    await db.current.pool.query('ANALYZE people');
    target = await resolveTarget(
      db.current.pool,
      { schema: 'public', table: 'people', key: undefined, columns: ['email', 'mobno'], format: 'django-fernet-v1' },
      { requireVersionColumns: true, registrySchema: 'pgrekey' },
    );
  }, 120_000);
  afterAll(() => ws?.cleanup());

  it.each([{ percent: 100 }, { rows: ROWS }, { rows: ROWS * 10 }])(
    'sample %o is read as a full scan in --chunk-rows read-only transactions, as the full scan is',
    async (sample) => {
      const full = await verifyCounting({ chunkRows: CHUNK_ROWS });
      // 60 rows in chunks of 12: five chunks, pages no larger than a chunk.
      expect(full.outcome).toMatchObject({ status: 'succeeded', examined: ROWS });
      expect(full.pages).toEqual([12, 12, 12, 12, 12]);
      const sampled = await verifyCounting({ sample, chunkRows: CHUNK_ROWS });
      expect(sampled.outcome).toMatchObject({ status: 'succeeded', examined: ROWS, sampled: true });
      expect(sampled.outcome.samples[target.name]).toMatchObject({ method: 'full-scan', rowsChecked: ROWS });
      expect(sampled.pages).toEqual(full.pages);
      expect(sampled.readOnlyTransactions).toBe(full.readOnlyTransactions);
      expect(full.readOnlyTransactions).toBeGreaterThanOrEqual(5);
    },
    60_000,
  );
});
