/**
 * `history` shows an unfinished rotation's progress: a run writes its counters
 * when it ends, so an open one's are summed from its ranges.
 */
import { expect, it } from 'vitest';
import { expectExit, startCli, useFreshRotations, waitForStderr } from '../helpers/rotationFixture.js';

const fresh = useFreshRotations();

it('an open rotation shows the rows its ranges have examined so far', async () => {
  const { db, ws } = await fresh('history_open_run', 20_000);
  expectExit(await ws.run(['rotate', '--max-duration', '1s', '--max-rate', '2000', '--batch-size', '100']), 75);
  const history = await ws.run(['history', '--json']);
  expectExit(history, 0);
  const runs = JSON.parse(history.stdout).runs as { kind: string; status: string; rowsExamined: number; rowsChanged: number }[];
  const open = runs.filter((r) => r.kind === 'rotate');
  const ranges = await db.pool.query(
    `SELECT sum(rows_examined)::float8 AS examined, sum(rows_changed)::float8 AS changed FROM pgrekey.ranges`,
  );
  expect(ranges.rows[0].examined).toBeGreaterThan(0);
  // Nobody works on it after the stop: history says so, as status does; the row stays open (running).
  expect(open).toEqual([
    expect.objectContaining({ status: 'stopped', storedStatus: 'running', rowsExamined: ranges.rows[0].examined, rowsChanged: ranges.rows[0].changed }),
  ]);
  const human = await ws.run(['history']);
  expect(human.stdout).toMatch(/\n\S+ \S+\s+rotate\s+manual\s+.*\s\d+\/\d+\s+stopped\s/);
}, 120_000);

it('a rotation being worked on shows as running', async () => {
  const { ws } = await fresh('history_running_run', 20_000);
  const cli = await startCli(ws, ['rotate', '--batch-size', '100', '--max-rate', '2000', '--max-duration', '20s']);
  try {
    await waitForStderr(cli, /rotation run \d+/);
    // Synchronise on a live lease (status shows the worker), then read the history.
    const deadline = Date.now() + 20_000;
    while (JSON.parse((await ws.run(['status', '--json'])).stdout).workers.length === 0 && Date.now() < deadline);
    const runs = JSON.parse((await ws.run(['history', '--json'])).stdout).runs as { kind: string; status: string; storedStatus: string }[];
    expect(runs.filter((r) => r.kind === 'rotate')).toEqual([expect.objectContaining({ status: 'running', storedStatus: 'running' })]);
  } finally {
    cli.child.kill('SIGTERM');
    await cli.done;
  }
}, 120_000);
