/**
 * A `verify --fix-versions` that fails part-way has already committed some
 * key-version repairs; its run records them, so the retire gate counts it as a
 * change (a rehearsal older than the repairs no longer opens the gate).
 */
import { expect, it } from 'vitest';
import { waitForLockWait } from '../helpers/database.js';
import { expectExit, startCli, useFreshRotations, waitForStderr } from '../helpers/rotationFixture.js';

const fresh = useFreshRotations();

it('records the repairs committed before the failure', async () => {
  const { db, ws } = await fresh('verify_fix_failure', 1000);
  expectExit(await ws.run(['rotate']), 0);
  // Every hint unknown (NULL is always allowed), then a trigger of the
  // application's that refuses the repair of row 800: the scan fails there.
  await db.pool.query(`
    UPDATE people SET email_key_version = NULL;
    CREATE FUNCTION refuse_800() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.id = 800 AND NEW.email_key_version IS NOT NULL THEN RAISE EXCEPTION 'row 800 is frozen'; END IF;
      RETURN NEW;
    END $$;
    CREATE TRIGGER refuse_800 BEFORE UPDATE ON people FOR EACH ROW EXECUTE FUNCTION refuse_800();`);
  const verify = await ws.run(['verify', '--fix-versions', '--chunk-rows', '100']);
  expect(verify.code).not.toBe(0);
  const repaired = await db.pool.query(`SELECT count(*)::int AS n FROM people WHERE email_key_version IS NOT NULL`);
  expect(repaired.rows[0].n).toBeGreaterThan(0);
  const run = await db.pool.query(`SELECT status, rows_changed::int AS changed FROM pgrekey.runs WHERE kind = 'verify'`);
  expect(run.rows).toEqual([{ status: 'failed', changed: repaired.rows[0].n }]);
}, 120_000);

it('a SIGTERM stops the scan between pages with exit 75 and records the repairs made before it', async () => {
  const { db, ws } = await fresh('verify_fix_sigterm', 3000);
  expectExit(await ws.run(['rotate']), 0);
  await db.pool.query('UPDATE people SET email_key_version = NULL');
  // An application transaction holds row 1200: the repair batch that includes it waits.
  const blocker = await db.pool.connect();
  let cli: Awaited<ReturnType<typeof startCli>> | undefined;
  try {
    await blocker.query('BEGIN');
    await blocker.query('SELECT 1 FROM people WHERE id = 1200 FOR UPDATE');
    cli = await startCli(ws, ['verify', '--fix-versions', '--chunk-rows', '100', '--json']);
    await waitForLockWait(db.pool, '%UPDATE%', { until: cli.done });
    cli.child.kill('SIGTERM');
    await waitForStderr(cli, /stop requested/);
  } finally {
    await blocker.query('ROLLBACK');
    blocker.release();
  }
  const result = await cli!.done;
  expect({ code: result.code, signal: result.signal }, result.stderr).toEqual({ code: 75, signal: null });
  expect(JSON.parse(result.stdout)).toMatchObject({ status: 'stopped' });
  const repaired = (await db.pool.query(`SELECT count(*)::int AS n FROM people WHERE email_key_version IS NOT NULL`)).rows[0].n;
  expect(repaired).toBeGreaterThan(0);
  expect(repaired).toBeLessThan(3000);
  // Recorded, so the retire gate sees the repairs; failed, as it proved nothing.
  const run = await db.pool.query(
    `SELECT status, rows_changed::int AS changed, summary->>'error' AS error FROM pgrekey.runs WHERE kind = 'verify'`,
  );
  expect(run.rows).toEqual([{ status: 'failed', changed: repaired, error: 'STOPPED' }]);
}, 120_000);
