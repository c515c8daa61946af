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
