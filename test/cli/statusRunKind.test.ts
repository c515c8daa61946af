/**
 * `status --run N` shows rotations. Asked for a key lifecycle or verify run
 * (ids that `history` lists side by side with rotations), it must not render
 * it as a rotation ("to key ?", no ranges, no workers): it names the run's
 * kind and points to `pg-rekey history`, as a usage mistake (exit 2).
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { useTestDatabase } from '../helpers/database.js';
import { expectExit, prepareRotation, type RotationWorkspace } from '../helpers/rotationFixture.js';

const db = useTestDatabase('status_run_kind');
let ws: RotationWorkspace;
let runs: { id: number; kind: string }[];

beforeAll(async () => {
  ws = await prepareRotation(db.current.pool, db.current.url, 40);
  expectExit(await ws.run(['keys', 'add', 'old']), 0);
  expectExit(await ws.run(['rotate']), 0);
  expectExit(await ws.run(['verify']), 0);
  const history = await ws.run(['history', '--json']);
  expectExit(history, 0);
  runs = JSON.parse(history.stdout).runs;
  expect(runs.map((r) => r.kind).sort()).toEqual(expect.arrayContaining(['add', 'rotate', 'verify']));
});
afterAll(() => ws?.cleanup());

test('status --run of a run that is not a rotation exits 2 naming its kind and "pg-rekey history"', async () => {
  for (const run of runs.filter((r) => r.kind !== 'rotate')) {
    const human = await ws.run(['status', '--run', String(run.id)]);
    expectExit(human, 2);
    expect(human.stdout).toBe('');
    expect(human.stderr).toContain(`run ${run.id} is a ${run.kind} run`);
    expect(human.stderr).toContain('pg-rekey history');

    const json = await ws.run(['status', '--run', String(run.id), '--json']);
    expectExit(json, 2);
    expect(json.stdout).toBe('');
    expect(JSON.parse(json.stderr).error).toMatchObject({ code: 'USAGE', message: expect.stringContaining(`a ${run.kind} run`) });
  }
});

test('status --run of the rotation, and plain status after a later verify, still show the rotation', async () => {
  const rotation = runs.find((r) => r.kind === 'rotate')!;
  for (const args of [['status', '--run', String(rotation.id), '--json'], ['status', '--json']]) {
    const r = await ws.run(args);
    expectExit(r, 0);
    expect(JSON.parse(r.stdout)).toMatchObject({ runId: rotation.id, status: 'succeeded' });
  }
});
