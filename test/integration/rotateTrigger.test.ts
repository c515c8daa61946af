/**
 * A rotation is recorded as `scheduled` when the key it replaces had served
 * its rotation interval — also in the runbook's order, where the new key is
 * promoted first and the rotation follows (the primary is then brand new; the
 * key being replaced is the previous primary).
 */
import { expect, it } from 'vitest';
import { expectExit, useFreshRotations } from '../helpers/rotationFixture.js';

const fresh = useFreshRotations();

it('promote, then rotate: scheduled when the previous primary was due', async () => {
  const { db, ws } = await fresh('rotate_trigger', 200);
  expectExit(await ws.run(['keys', 'add', 'old']), 0);
  // "old" was the primary for 100 days (past the default 90-day interval) until "new" was promoted just now.
  await db.pool.query(`UPDATE pgrekey.keys SET promoted_at = now() - interval '100 days' WHERE key_id = 'old'`);
  expectExit(await ws.run(['rotate']), 0);
  const history = JSON.parse((await ws.run(['history', '--json'])).stdout).runs as { kind: string; trigger: string }[];
  expect(history.filter((r) => r.kind === 'rotate').map((r) => r.trigger)).toEqual(['scheduled']);
}, 120_000);
