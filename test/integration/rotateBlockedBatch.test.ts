/**
 * A batch the application keeps blocked, as a deploy hook sees it: a row lock
 * held longer than --lock-timeout (retried), or for good (the run must still
 * stop at --max-duration with exit 75 and resume), and a replica whose replay
 * is stuck when --max-duration runs out.
 */
import { describe, expect, it } from 'vitest';
import { waitForLockWait } from '../helpers/database.js';
import { countRewrites, expectAllUnderKey, expectEachRewrittenOnce, expectExit, startCli, useFreshRotations } from '../helpers/rotationFixture.js';

const fresh = useFreshRotations();

const rotatedRows = async (pool: import('pg').Pool) =>
  (await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM people WHERE email_key_version IS NOT NULL`)).rows[0]!.n;

describe('a batch blocked by a row lock the application never lets go of', () => {
  it('stops the run at --max-duration with exit 75, writing nothing of that batch, and the next run finishes it', async () => {
    const ROWS = 600;
    const { db, ws } = await fresh('lock_forever', ROWS);
    await countRewrites(db.pool);
    const holder = await db.pool.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM people WHERE id = 10 FOR UPDATE');
      // Five lock timeouts of 1.5 s each outlast --max-duration many times over.
      const cli = await startCli(ws, ['rotate', '--workers', '1', '--batch-size', '500', '--lock-timeout', '1500ms', '--max-duration', '3s', '--json']);
      await waitForLockWait(db.pool, 'UPDATE %people% AS t SET %', { until: cli.done });
      const result = await cli.done;
      expect(result.code, result.stderr).toBe(75);
      expect(JSON.parse(result.stdout)).toMatchObject({ status: 'stopped' });
      // The blocked batch (rows 1–500) rolled back: none of its rows moved.
      expect(await rotatedRows(db.pool)).toBe(0);
      // Its range was handed back at the stop: the next run need not wait for the lease to expire.
      const held = await db.pool.query(`SELECT count(*)::int AS n FROM pgrekey.ranges WHERE lease_expires_at > now()`);
      expect(held.rows[0]).toEqual({ n: 0 });
      await holder.query('COMMIT');
    } finally {
      holder.release();
    }
    expectExit(await ws.run(['rotate', '--workers', '1', '--batch-size', '500']), 0);
    await expectAllUnderKey(db.pool, 'new');
    await expectEachRewrittenOnce(db.pool, ROWS);
  }, 120_000);
});

describe('a batch whose read waits for a table lock (an application migration holding ACCESS EXCLUSIVE)', () => {
  it('gives up after --lock-timeout like a write, so --max-duration still stops the run with exit 75', async () => {
    const ROWS = 600;
    const { db, ws } = await fresh('read_blocked', ROWS);
    const holder = await db.pool.connect();
    const cli = await startCli(ws, ['rotate', '--workers', '1', '--batch-size', '100', '--pause-ms', '1000', '--lock-timeout', '1s', '--max-duration', '4s', '--json']);
    try {
      // Once the first batch is in, the "migration" takes the table between two batches.
      while ((await rotatedRows(db.pool)) === 0) await new Promise((r) => setTimeout(r, 50));
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE people IN ACCESS EXCLUSIVE MODE');
      await waitForLockWait(db.pool, '%FROM %people%', { until: cli.done });
      const result = await cli.done;
      expect(result.code, result.stderr).toBe(75);
      await holder.query('COMMIT');
    } finally {
      cli.child.kill('SIGKILL');
      await holder.query('ROLLBACK').catch(() => undefined);
      holder.release();
    }
    expectExit(await ws.run(['rotate']), 0);
    await expectAllUnderKey(db.pool, 'new');
  }, 60_000);
});

describe('--statement-timeout shorter than every batch needs', () => {
  it('retries a few times, then exits 69 naming the timeout, nothing of the batch written and the run resumable', async () => {
    const { db, ws } = await fresh('statement_timeout', 200);
    // An application trigger that makes every update slow: no batch can finish in 300 ms.
    await db.pool.query(`
      CREATE FUNCTION slow_update() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(1); RETURN NEW; END $$;
      CREATE TRIGGER slow_update BEFORE UPDATE ON people FOR EACH ROW EXECUTE FUNCTION slow_update();`);
    const result = await ws.run(['rotate', '--workers', '1', '--statement-timeout', '300ms', '--log-level', 'warn']);
    expectExit(result, 69);
    expect(result.stderr).toMatch(/statement_timeout/);
    expect(result.stderr.match(/"sqlstate":"57014".*transient database error, retrying/g)).toHaveLength(4);
    expect(await rotatedRows(db.pool)).toBe(0);
    await db.pool.query('DROP TRIGGER slow_update ON people');
    expectExit(await ws.run(['rotate']), 0);
    await expectAllUnderKey(db.pool, 'new');
  }, 60_000);
});

describe('a batch deadlocked with an application transaction', () => {
  it('is the victim, retried after the application commits: nothing lost, each value rewritten once', async () => {
    const ROWS = 600;
    const { db, ws } = await fresh('deadlock', ROWS);
    await countRewrites(db.pool);
    const app = await db.pool.connect();
    try {
      // The application's deadlock check waits longest, so the rotator's batch is the one the server aborts.
      await app.query(`SET deadlock_timeout = '30s'`);
      await app.query('BEGIN');
      await app.query(`UPDATE people SET name = 'app' WHERE id = 300`);
      const cli = await startCli(ws, ['rotate', '--workers', '1', '--batch-size', '500', '--log-level', 'warn', '--json']);
      // The batch has locked rows 1–299 and waits for row 300; the application now wants row 5.
      await waitForLockWait(db.pool, 'UPDATE %people% AS t SET %', { until: cli.done });
      await app.query(`UPDATE people SET name = 'app' WHERE id = 5`);
      await app.query('COMMIT');
      const result = await cli.done;
      expect(result.code, result.stderr).toBe(0);
      expect(result.stderr).toMatch(/"sqlstate":"40P01".*transient database error, retrying/);
      expect(JSON.parse(result.stdout)).toMatchObject({ status: 'succeeded', changed: ROWS, conflicted: 0 });
    } finally {
      await app.query('ROLLBACK').catch(() => undefined);
      app.release();
    }
    const names = await db.pool.query(`SELECT id::int FROM people WHERE name = 'app' ORDER BY id`);
    expect(names.rows).toEqual([{ id: 5 }, { id: 300 }]);
    await expectAllUnderKey(db.pool, 'new');
    await expectEachRewrittenOnce(db.pool, ROWS);
  }, 60_000);
});
