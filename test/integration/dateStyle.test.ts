/**
 * A DateStyle set for pg-rekey's role or database (ALTER ROLE/DATABASE … SET
 * DateStyle = 'SQL, DMY', common where the DBA's locale writes days first)
 * changes how the server renders every timestamp it sends. The driver parses
 * only the ISO form, so without pinning it the commands that show times
 * (status, keys list, history) failed with "internal error" (exit 70).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database.js';
import { expectExit, prepareRotation, type RotationWorkspace } from '../helpers/rotationFixture.js';

const db = useTestDatabase('date_style');
let ws: RotationWorkspace;

beforeAll(async () => {
  ws = await prepareRotation(db.current.pool, db.current.url, 50);
  expectExit(await ws.run(['keys', 'add', 'old']), 0);
  expectExit(await ws.run(['rotate']), 0);
});
afterAll(() => ws?.cleanup());

describe('a DateStyle other than ISO', () => {
  for (const dateStyle of ['SQL, DMY', 'Postgres, MDY', 'German']) {
    it(`${dateStyle}: status, keys list and history show the times, exit 0`, async () => {
      const started = (await db.current.pool.query<{ at: string }>(
        `SELECT to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') AS at FROM pgrekey.runs WHERE kind = 'rotate'`,
      )).rows[0]!.at;
      await db.current.pool.query(`ALTER DATABASE ${db.current.name} SET DateStyle = '${dateStyle}'`);
      try {
        for (const args of [['status'], ['keys', 'list'], ['keys', 'list', '--check-due']]) expectExit(await ws.run(args), 0);
        const history = await ws.run(['history']);
        expectExit(history, 0);
        expect(history.stdout).toContain(`${started}  rotate`);
        const json = await ws.run(['status', '--json']);
        expectExit(json, 0);
        expect(JSON.stringify(JSON.parse(json.stdout))).toContain(`"${started.replace(' ', 'T')}`);
      } finally {
        await db.current.pool.query(`ALTER DATABASE ${db.current.name} RESET DateStyle`);
      }
    });
  }
});
