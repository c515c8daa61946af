/**
 * A new key id carrying the secret of a registered key (say the leaked, retired
 * one, pasted by mistake) is refused before anything is registered: a rotation
 * to it would report success while every value stayed under the old secret.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database.js';
import { expectExit, OLD_SECRET, openRetireGate, prepareRotation, type RotationWorkspace } from '../helpers/rotationFixture.js';

const db = useTestDatabase('key_reuse');
let ws: RotationWorkspace;

beforeAll(async () => {
  ws = await prepareRotation(db.current.pool, db.current.url, 50);
  await openRetireGate(ws);
  expectExit(await ws.run(['keys', 'retire', 'old', '--reason', 'leaked']), 0);
  // The next quarter's key, whose secret is by mistake the leaked one.
  const file = path.join(ws.dir, 'pg-rekey.config.json');
  const config = JSON.parse(await readFile(file, 'utf8'));
  config.keys = [config.keys[0], { id: '2027q1', secret: 'env:SECRET_KEY_2027' }];
  await writeFile(file, JSON.stringify(config));
  ws.env.SECRET_KEY_2027 = OLD_SECRET;
});
afterAll(() => ws?.cleanup());

it('is refused by keys add, keys promote and rotate, and nothing is registered', async () => {
  const runsBefore = (await db.current.pool.query('SELECT count(*)::int AS n FROM pgrekey.runs')).rows[0];
  for (const args of [['keys', 'add', '2027q1'], ['keys', 'promote', '2027q1'], ['rotate', '--to', '2027q1']]) {
    const result = await ws.run(args);
    expectExit(result, 2);
    expect(result.stderr).toContain('key 2027q1 has the same secret as the registered key old (retired)');
    expect(result.stderr).not.toContain(OLD_SECRET);
  }
  const keys = await db.current.pool.query('SELECT key_id FROM pgrekey.keys ORDER BY version');
  expect(keys.rows.map((r) => r.key_id)).toEqual(['old', 'new']);
  expect((await db.current.pool.query('SELECT count(*)::int AS n FROM pgrekey.runs')).rows[0]).toEqual(runsBefore);
});

it('is allowed where every target derives a key per id from one SECRET_KEY (django-fernet-v2)', async () => {
  const file = path.join(ws.dir, 'pg-rekey.config.json');
  const config = JSON.parse(await readFile(file, 'utf8'));
  await writeFile(file, JSON.stringify({ ...config, targets: config.targets.map((t: object) => ({ ...t, format: 'django-fernet-v2' })) }));
  expectExit(await ws.run(['keys', 'add', '2027q1']), 0);
});
