/**
 * `history` shows an unfinished rotation's progress: a run writes its counters
 * when it ends, so an open one's are summed from its ranges.
 */
import { expect, it } from 'vitest';
import { expectExit, useFreshRotations } from '../helpers/rotationFixture.js';

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
  expect(open).toEqual([
    expect.objectContaining({ status: 'running', rowsExamined: ranges.rows[0].examined, rowsChanged: ranges.rows[0].changed }),
  ]);
}, 120_000);
