/**
 * `keys retire` deadlocked with an application's migration: the retire gate
 * holds the registry lock while it reads the target table, and a migration
 * holding that table's lock then needs the registry (dropping the table drops
 * its key-version foreign keys). The server aborts one of the two; when it is
 * pg-rekey's, that is a conflict with another session to run again after
 * (exit 69), not a bug in pg-rekey (exit 70).
 */
import { expect, it } from 'vitest';
import { waitForLockWait } from '../helpers/database.js';
import { openRetireGate, startCli, useFreshRotations } from '../helpers/rotationFixture.js';

const fresh = useFreshRotations();

it('keys retire chosen as the deadlock victim exits 69 saying to run it again, and retires nothing', async () => {
  const { db, ws } = await fresh('retire_deadlock', 300);
  await openRetireGate(ws);
  const migration = await db.pool.connect();
  try {
    // The migration's deadlock check waits longest, so the retire is the one the server aborts.
    await migration.query(`SET deadlock_timeout = '30s'`);
    await migration.query('BEGIN');
    await migration.query('LOCK TABLE people IN ACCESS EXCLUSIVE MODE');
    const retire = await startCli(ws, ['keys', 'retire', 'old']);
    // The gate waits for people while it holds the registry; the DROP then needs the registry.
    await waitForLockWait(db.pool, '%people%', { until: retire.done });
    const dropped = migration.query('DROP TABLE people');
    const result = await retire.done;
    await dropped;
    await migration.query('ROLLBACK');
    expect({ code: result.code, stderr: result.stderr }).toMatchObject({
      code: 69,
      stderr: expect.stringMatching(/\(SQLSTATE 40P01\).*another session.*run the command again/is),
    });
    expect(result.stderr).not.toMatch(/internal error/);
  } finally {
    await migration.query('ROLLBACK').catch(() => undefined);
    migration.release();
  }
  const old = await db.pool.query(`SELECT state FROM pgrekey.keys WHERE key_id = 'old'`);
  expect(old.rows).toEqual([{ state: 'active' }]);
}, 120_000);
