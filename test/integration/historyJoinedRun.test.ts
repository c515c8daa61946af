/**
 * The audit trail of a run that several `rotate` processes shared: what the
 * history says of it must hold for every process that worked on it.
 */
import { expect, it } from 'vitest';
import { expectExit, useFreshRotations } from '../helpers/rotationFixture.js';

const fresh = useFreshRotations();

it('an emergency rotation that joins an unfinished manual run is recorded as an emergency, with its reason', async () => {
  const { db, ws } = await fresh('history_emergency_join', 5000);
  // A deploy hook's rotation, stopped by its time limit.
  expectExit(await ws.run(['rotate', '--batch-size', '100', '--max-rate', '1000', '--max-duration', '1s']), 75);
  // Then the key leaks: the DBA runs the emergency rotation, which joins the open run to the same key.
  const emergency = await ws.run(['rotate', '--emergency', '--reason', 'INC-123: key exposed', '--json']);
  expectExit(emergency, 0);
  const runs = await db.pool.query(`SELECT id::int AS id, trigger, reason, status FROM pgrekey.runs WHERE kind = 'rotate'`);
  expect(runs.rows).toEqual([{ id: JSON.parse(emergency.stdout).runId, trigger: 'emergency', reason: 'INC-123: key exposed', status: 'succeeded' }]);
  const history = await ws.run(['history']);
  expect(history.stdout).toMatch(/rotate\s+emergency\s+INC-123: key exposed\s/);
  expectExit(await ws.run(['history', '--verify']), 0);
}, 120_000);

it("a host that joins an unfinished run with --reason has its reason added to the starter's, recorded once", async () => {
  const { db, ws } = await fresh('history_reason_join', 5000);
  // About 1,000 rows a run at most: the first three stop at their time limit, the last finishes.
  const slice = ['--batch-size', '100', '--max-rate', '500', '--max-duration', '2s'];
  // The scheduled rotation, with its reason, stopped by its time limit.
  expectExit(await ws.run(['rotate', '--reason', 'Q1 rotation', ...slice]), 75);
  // A second host joins it with a reason of its own (not an emergency). Before,
  // its reason was dropped without a word: the history showed the starter's only.
  expectExit(await ws.run(['rotate', '--reason', 'CHG-42: finish before the freeze', ...slice]), 75);
  // Both resume with the reasons they started with: neither is recorded twice.
  expectExit(await ws.run(['rotate', '--reason', 'CHG-42: finish before the freeze', ...slice]), 75);
  const finish = await ws.run(['rotate', '--reason', 'Q1 rotation', '--json']);
  expectExit(finish, 0);
  const runs = await db.pool.query(`SELECT id::int AS id, trigger, reason, status FROM pgrekey.runs WHERE kind = 'rotate'`);
  expect(runs.rows).toEqual([
    { id: JSON.parse(finish.stdout).runId, trigger: 'manual', reason: 'Q1 rotation; joined: CHG-42: finish before the freeze', status: 'succeeded' },
  ]);
  const history = await ws.run(['history']);
  expect(history.stdout).toContain('Q1 rotation; joined: CHG-42: finish before the freeze');
  expectExit(await ws.run(['history', '--verify']), 0);
}, 120_000);

it('a second emergency rotation joining an emergency run has its reason recorded too', async () => {
  const { db, ws } = await fresh('history_emergency_twice', 5000);
  expectExit(await ws.run(['rotate', '--emergency', '--reason', 'INC-1: key exposed', '--batch-size', '100', '--max-rate', '500', '--max-duration', '2s']), 75);
  // Before, the run being an emergency already, the second incident's reason was dropped.
  const second = await ws.run(['rotate', '--emergency', '--reason', 'INC-2: backup leaked', '--json']);
  expectExit(second, 0);
  const runs = await db.pool.query(`SELECT id::int AS id, trigger, reason, status FROM pgrekey.runs WHERE kind = 'rotate'`);
  expect(runs.rows).toEqual([
    { id: JSON.parse(second.stdout).runId, trigger: 'emergency', reason: 'INC-1: key exposed; emergency: INC-2: backup leaked', status: 'succeeded' },
  ]);
  expectExit(await ws.run(['history', '--verify']), 0);
}, 120_000);
