/**
 * `keys retire K` racing the start of `rotate --to K` (an emergency rollback to
 * the old key): whichever order the two commit in, no row may end up under a
 * retired key. A third session holding a lock on the runs table parks the
 * rotate inside its run-planning transaction, so the race is staged exactly.
 */
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { useTestDatabase, waitForLockWait } from '../helpers/database.js';
import { expectAllUnderKey, expectExit, openRetireGate, prepareRotation, type RotationWorkspace, startCli } from '../helpers/rotationFixture.js';

const db = useTestDatabase('retire_race');
let ws: RotationWorkspace;

beforeAll(async () => {
  ws = await prepareRotation(db.current.pool, db.current.url, 400);
  await openRetireGate(ws);
});
afterAll(() => ws?.cleanup());

it('a rollback rotation that starts while the old key is being retired keeps it active', async () => {
  const blocker = new pg.Client({ connectionString: db.current.url });
  await blocker.connect();
  try {
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE pgrekey.runs IN EXCLUSIVE MODE');
    const rotate = await startCli(ws, ['rotate', '--to', 'old', '--workers', '1', '--json']);
    await waitForLockWait(db.current.pool, '%FROM "pgrekey".runs%FOR UPDATE%'); // planning, registry share-locked
    const retire = await startCli(ws, ['keys', 'retire', 'old', '--json']);
    await waitForLockWait(db.current.pool, '%LOCK TABLE "pgrekey".keys%'); // retire waits for the planning to commit
    await blocker.query('COMMIT');
    const [rotated, retired] = await Promise.all([rotate.done, retire.done]);
    expect(rotated.code).toBe(0);
    // The gate, checked once the run is committed, finds it open (exit 1: refused).
    expect(retired.code).toBe(1);
    expect(JSON.parse(retired.stdout)).toMatchObject({ retired: false });
  } finally {
    await blocker.end();
  }
  const state = await db.current.pool.query(`SELECT state FROM pgrekey.keys WHERE key_id = 'old'`);
  expect(state.rows).toEqual([{ state: 'active' }]);
  await expectAllUnderKey(db.current.pool, 'old');
}, 120_000);
