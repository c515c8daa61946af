/**
 * verify must be at least as fast as rotate on the same table (issue 5 §1).
 * 100,000 rows take about a minute to seed and rotate, so this runs only with
 * PG_REKEY_SPEED=1 (e.g. `PG_REKEY_SPEED=1 npx vitest run test/integration/verifySpeed.test.ts`);
 * PG_REKEY_SPEED_ROWS overrides the row count. It prints the measured figures.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database.js';
import { expectExit, prepareRotation, type RotationWorkspace } from '../helpers/rotationFixture.js';

const enabled = process.env.PG_REKEY_SPEED === '1';
const ROWS = Number(process.env.PG_REKEY_SPEED_ROWS ?? 100_000);

describe.runIf(enabled)('verify speed', () => {
  const db = useTestDatabase('verify_speed');
  let ws: RotationWorkspace;
  beforeAll(async () => {
    ws = await prepareRotation(db.current.pool, db.current.url, ROWS);
    expectExit(await ws.run(['keys', 'add', 'old']), 0);
  }, 600_000);
  afterAll(() => ws?.cleanup());

  it(`verifies ${ROWS} rows at least as fast as rotate rotates them`, async () => {
    const timed = async (args: string[]) => {
      const started = process.hrtime.bigint();
      const result = await ws.run(args, { timeoutMs: 600_000 });
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      expectExit(result, 0);
      return { seconds, rowsPerSecond: Math.round(ROWS / seconds), report: JSON.parse(result.stdout) };
    };
    const before = await timed(['verify', '--json']);
    const rotate = await timed(['rotate', '--json']);
    const after = await timed(['verify', '--json', '--without', 'old']);
    console.log(
      `rows ${ROWS}: verify ${before.rowsPerSecond} rows/s (in-process ${before.report.rowsPerSecond}), ` +
        `rotate ${rotate.rowsPerSecond} rows/s, verify --without old ${after.rowsPerSecond} rows/s (wall clock, CLI start included)`,
    );
    expect(before.report.examined).toBe(ROWS);
    expect(after.seconds).toBeLessThanOrEqual(rotate.seconds);
    expect(before.seconds).toBeLessThanOrEqual(rotate.seconds);
  }, 900_000);
});
