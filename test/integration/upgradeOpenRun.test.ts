/**
 * Upgrading pg-rekey with a rotation run left half-way by the older version:
 * the schema as the older pg-rekey left it (its own migrations up to 0003,
 * before ranges.recheck / batches_committed and the pinned search_paths), a
 * rotate killed mid-batch, then `migrate up` of this version from two hosts at
 * once, then `rotate` resumes the same run. Nothing is lost, nothing rotated
 * twice, and status, history and the audit chain agree.
 *
 * The older schema is made by undoing 0004 and 0005 with their own down SQL
 * under the open run (migrate down refuses while a run is open, rightly).
 * Checked by hand against builds of the pg-rekey versions that shipped 0003
 * and 0004 as the last migration, which behave the same here.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { OWN_MIGRATIONS_DIR } from '../../src/schema/migrate.js';
import { useTestDatabase, waitForLockWait } from '../helpers/database.js';
import {
  countRewrites,
  expectAllUnderKey,
  expectEachRewrittenOnce,
  expectExit,
  prepareRotation,
  startCli,
  type RotationWorkspace,
} from '../helpers/rotationFixture.js';

const db = useTestDatabase('upgrade_open_run');
let ws: RotationWorkspace;
const ROWS = 20_000;
const NEWER = ['0004_range_recheck', '0005_pin_function_search_path'];

beforeAll(async () => {
  ws = await prepareRotation(db.current.pool, db.current.url, ROWS);
  expectExit(await ws.run(['keys', 'add', 'old']), 0);
  await countRewrites(db.current.pool);
}, 120_000);
afterAll(() => ws?.cleanup());

/** The "-- Down Migration" part of one of our migration files. */
async function downSql(name: string): Promise<string> {
  const source = await readFile(path.join(OWN_MIGRATIONS_DIR, `${name}.sql`), 'utf8');
  return source.slice(source.indexOf('-- Down Migration'));
}

it('a run left half-way under the 0003 schema resumes after "migrate up" from two hosts: every value rotated once', async () => {
  const pool = db.current.pool;
  // Kill the rotate while a batch waits on an application's row lock: the
  // batches before it are committed, that one is not.
  const holder = await pool.connect();
  try {
    await holder.query('BEGIN');
    await holder.query('SELECT 1 FROM people WHERE id = 12345 FOR UPDATE');
    const cli = await startCli(ws, ['rotate', '--workers', '1', '--batch-size', '500', '--lease', '1s']);
    await waitForLockWait(pool, '%UPDATE%', { until: cli.done });
    cli.child.kill('SIGKILL');
    expect((await cli.done).signal).toBe('SIGKILL');
  } finally {
    await holder.query('ROLLBACK');
    holder.release();
  }
  const run = (await pool.query(`SELECT id::int FROM pgrekey.runs WHERE kind = 'rotate' AND status = 'running'`)).rows[0].id as number;
  const committed = (await pool.query(`SELECT sum(rows_examined)::int AS n FROM pgrekey.ranges WHERE run_id = $1`, [run])).rows[0].n as number;
  expect(committed).toBeGreaterThan(0);
  expect(committed).toBeLessThan(ROWS);

  // The schema as the older pg-rekey left it.
  await pool.query('BEGIN');
  for (const name of [...NEWER].reverse()) {
    await pool.query(`SET search_path = pgrekey; ${await downSql(name)}; RESET search_path`);
    await pool.query('DELETE FROM pgrekey.pgrekey_migrations WHERE name = $1', [name]);
  }
  await pool.query('COMMIT');
  const refused = await ws.run(['status']);
  expectExit(refused, 3);
  expect(refused.stderr).toContain('older than this pg-rekey');

  const ups = await Promise.all([1, 2].map(() => ws.run(['migrate', 'up', '--json'])));
  for (const up of ups) expectExit(up, 0);
  expect(ups.flatMap((up) => JSON.parse(up.stdout).own).sort()).toEqual(NEWER);

  const stopped = JSON.parse((await ws.run(['status', '--json'])).stdout);
  expect(stopped).toMatchObject({ runId: run, status: 'stopped' });
  expect(stopped.targets[0].examined).toBe(committed);
  expect(stopped.targets[0].ranges.every((r: { toReread: number }) => r.toReread === 0)).toBe(true);

  const resumed = await ws.run(['rotate', '--json']);
  expectExit(resumed, 0);
  expect(JSON.parse(resumed.stdout)).toMatchObject({ runId: run, status: 'succeeded', examined: ROWS, changed: ROWS, conflicted: 0 });
  await expectEachRewrittenOnce(pool, ROWS);
  expect(await expectAllUnderKey(pool, 'new')).toBe(ROWS);

  const done = JSON.parse((await ws.run(['status', '--json'])).stdout);
  expect(done).toMatchObject({ runId: run, status: 'succeeded' });
  expect(done.targets[0]).toMatchObject({ examined: ROWS, changed: ROWS, failed: 0 });
  const history = JSON.parse((await ws.run(['history', '--json'])).stdout).runs;
  expect(history.filter((r: { kind: string }) => r.kind === 'rotate')).toEqual([
    expect.objectContaining({ id: run, status: 'succeeded', rowsExamined: ROWS, rowsChanged: ROWS, rowsFailed: 0 }),
  ]);
  const chain = await ws.run(['history', '--verify']);
  expectExit(chain, 0);
  expect(chain.stdout).toContain('Audit trail intact');
}, 180_000);
