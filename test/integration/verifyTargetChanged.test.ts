/**
 * A target table changing under the read-only scans — `pg-rekey verify` and
 * `pg-rekey rotate --dry-run` — as rotate already handles it
 * (rotateTargetChanged.test.ts): a clear error naming the table and saying
 * what to do, exit 2, never 70 ("internal error", a bug in pg-rekey).
 *
 * Staged deterministically: the test holds ACCESS EXCLUSIVE on the table, so
 * the command's first read of it waits (pg_stat_activity shows the wait); the
 * test then drops the table or a column in that same transaction and commits.
 */
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { CliResult } from '../helpers/cli.js';
import { waitForLockWait } from '../helpers/database.js';
import { expectExit, startCli, useFreshRotations, type RotationWorkspace } from '../helpers/rotationFixture.js';

const fresh = useFreshRotations();

/** Runs `args` while the test holds people's lock, applies `ddl` once the command's read waits for it, and returns the result. */
async function changeWhileReadWaits(pool: pg.Pool, ws: RotationWorkspace, args: string[], ddl: string): Promise<CliResult> {
  const holder = await pool.connect();
  try {
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE people IN ACCESS EXCLUSIVE MODE');
    const cli = await startCli(ws, args);
    await waitForLockWait(pool, '%SELECT % FROM %people% AS t%', { until: cli.done });
    await holder.query(ddl);
    await holder.query('COMMIT');
    return { ...(await cli.done), timedOut: false };
  } finally {
    await holder.query('ROLLBACK').catch(() => undefined);
    holder.release();
  }
}

describe('a target table dropped or altered while verify reads it', () => {
  it('dropped: exits 2 naming the table and what to do; the verify run is recorded as failed', async () => {
    const { db, ws } = await fresh('verify_dropped', 500);
    const result = await changeWhileReadWaits(db.pool, ws, ['verify', '--chunk-rows', '100'], 'DROP TABLE people');
    expectExit(result, 2);
    expect(result.stderr).toMatch(/public\.people changed while this verify read it: .*\(SQLSTATE 42P01\).*dropped, renamed or altered.*pg-rekey verify/s);
    expect(result.stderr).not.toContain('internal error');
    // A verify that ended early proves nothing: it is recorded as failed, never as a pass.
    const runs = await db.pool.query(`SELECT status FROM pgrekey.runs WHERE kind = 'verify'`);
    expect(runs.rows).toEqual([{ status: 'failed' }]);
  }, 120_000);

  it('its key-version column dropped: exits 2 naming the table and the column', async () => {
    const { db, ws } = await fresh('verify_kv_dropped', 500);
    const result = await changeWhileReadWaits(db.pool, ws, ['verify'], 'ALTER TABLE people DROP COLUMN email_key_version CASCADE');
    expectExit(result, 2);
    expect(result.stderr).toMatch(/public\.people changed while this verify read it: .*email_key_version.*\(SQLSTATE 42703\)/s);
  }, 120_000);
});

describe('a target table dropped or altered while rotate --dry-run reads it', () => {
  it('dropped: exits 2 naming the table and what to do, and writes nothing', async () => {
    const { db, ws } = await fresh('dryrun_dropped', 500);
    const runsBefore = await db.pool.query(`SELECT count(*)::int AS n FROM pgrekey.runs`);
    const result = await changeWhileReadWaits(db.pool, ws, ['rotate', '--dry-run', '--batch-size', '100'], 'DROP TABLE people');
    expectExit(result, 2);
    expect(result.stderr).toMatch(/public\.people changed while this dry run read it: .*\(SQLSTATE 42P01\).*dropped, renamed or altered.*pg-rekey rotate --dry-run/s);
    expect(result.stderr).not.toContain('internal error');
    const runsAfter = await db.pool.query(`SELECT count(*)::int AS n FROM pgrekey.runs`);
    expect(runsAfter.rows).toEqual(runsBefore.rows);
  }, 120_000);

  it('its key-version column dropped: exits 2 naming the table and the column', async () => {
    const { db, ws } = await fresh('dryrun_retyped', 500);
    const result = await changeWhileReadWaits(
      db.pool,
      ws,
      ['rotate', '--dry-run'],
      'ALTER TABLE people DROP COLUMN mobno_key_version CASCADE',
    );
    expectExit(result, 2);
    expect(result.stderr).toMatch(/public\.people changed while this dry run read it: .*mobno_key_version.*\(SQLSTATE 42703\)/s);
  }, 120_000);
});
