/**
 * `migrate down` while a rotation run is open would remove the key-version
 * columns the run writes (its workers failing mid-batch, the run unable to
 * resume): refused with exit 4, nothing undone; once the run is finished it works.
 * And the other way round: no rotation run starts while a migrate (from
 * another host) has passed that check and is undoing the columns.
 */
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect, it } from 'vitest';
import { waitForLockWait } from '../helpers/database.js';
import { expectExit, startCli, useFreshRotations, waitForStderr } from '../helpers/rotationFixture.js';

const fresh = useFreshRotations();

it('is refused while a rotation is unfinished, and works after it finished', async () => {
  const { db, ws } = await fresh('migrate_down_open_run', 20_000);
  expectExit(await ws.run(['rotate', '--max-duration', '1s', '--max-rate', '2000', '--batch-size', '100']), 75);
  const refused = await ws.run(['migrate', 'down']);
  expectExit(refused, 4);
  expect(refused.stderr).toMatch(/rotation run \d+ is unfinished/);
  const columns = `SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'people' AND column_name LIKE '%key_version'`;
  expect((await db.pool.query(columns)).rows[0]).toEqual({ n: 2 });
  expectExit(await ws.run(['rotate']), 0);
  const undone = await ws.run(['migrate', 'down', '--count', '5']);
  expectExit(undone, 0);
  // One stage at a time: the target migration now, pg-rekey's own schema on the next call.
  expect(undone.stdout).toMatch(/Undid 1 migration\(s\):[\s\S]*pg-rekey's own schema is next/);
  expect((await db.pool.query(columns)).rows[0]).toEqual({ n: 0 });
}, 120_000);

it('a rotate started while a migrate down is under way starts no run (exit 4); the migrate finishes', async () => {
  const { db, ws } = await fresh('rotate_during_migrate_down', 3000);
  // The target migration's down waits up to 60 s for its locks (the generated file says 5 s; a DBA may edit it).
  const dir = path.join(ws.dir, 'migrations');
  const [file] = await readdir(dir);
  const migration = path.join(dir, file!);
  await writeFile(migration, (await readFile(migration, 'utf8')).replaceAll("lock_timeout = '5s'", "lock_timeout = '60s'"));
  // An application transaction that read the table holds up the down's first DROP INDEX CONCURRENTLY:
  // the migrate has taken its lock and checked that no rotation is open.
  const reader = await db.pool.connect();
  try {
    await reader.query('BEGIN');
    await reader.query('SELECT count(*) FROM people');
    const down = ws.run(['migrate', 'down']);
    await waitForLockWait(db.pool, 'DROP INDEX CONCURRENTLY%', { until: down });
    const cli = await startCli(ws, ['rotate', '--batch-size', '50', '--max-rate', '500']);
    await waitForStderr(cli, /Started rotation run|pg-rekey:/);
    await reader.query('COMMIT');
    const rotate = await cli.done;
    expect({ code: rotate.code, stderr: rotate.stderr }).toMatchObject({ code: 4, stderr: expect.stringMatching(/pg-rekey migrate down is running/) });
    expectExit(await down, 0);
  } finally {
    await reader.query('ROLLBACK').catch(() => undefined);
    reader.release();
  }
  const runs = await db.pool.query(`SELECT count(*)::int AS n FROM pgrekey.runs WHERE kind = 'rotate'`);
  expect(runs.rows[0]).toEqual({ n: 0 });
}, 120_000);
