/**
 * `migrate down` while a rotation run is open would remove the key-version
 * columns the run writes (its workers failing mid-batch, the run unable to
 * resume): refused with exit 4, nothing undone; once the run is finished it works.
 */
import { expect, it } from 'vitest';
import { expectExit, useFreshRotations } from '../helpers/rotationFixture.js';

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
