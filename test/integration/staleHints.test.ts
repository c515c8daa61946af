/**
 * The key-version hints stay honest against writers that send a hint of their
 * own: a host still encrypting with the old key whose ORM saves every column it
 * loaded (the value under the old key, the hint it read after the rotation),
 * and an INSERT that copies a hint. Else `keys retire` would trust the stale
 * hint and retire a key those values still need.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createCodec } from '../../src/crypto/createCodec.js';
import { useTestDatabase } from '../helpers/database.js';
import { bothKeysCodec, expectExit, OLD_SECRET, openRetireGate, prepareRotation, type RotationWorkspace } from '../helpers/rotationFixture.js';

const db = useTestDatabase('stale_hints');
let ws: RotationWorkspace;

/** The codec of a host that was never given the new key. */
const oldKeyOnly = () => createCodec({ format: 'django-fernet-v1', keys: [{ id: 'old', secret: 'env:OLD' }], env: { OLD: OLD_SECRET } });

beforeAll(async () => {
  ws = await prepareRotation(db.current.pool, db.current.url, 200);
  await openRetireGate(ws);
});
afterAll(() => ws?.cleanup());

it('a whole-row save with a stale hint, and an insert with a copied one, leave the hints unknown; retire refuses', async () => {
  const pool = db.current.pool;
  const codec = await oldKeyOnly();
  const hint = async (id: number) => (await pool.query(`SELECT email_key_version AS v FROM people WHERE id = $1`, [id])).rows[0].v;
  // Host 1 (old key only) loads row 5 after the rotation: its hint names the new key.
  const loaded = await hint(5);
  expect(loaded).not.toBeNull();
  // Host 2 writes the email meanwhile; then host 1 saves every column it loaded.
  await pool.query(`UPDATE people SET email = $1 WHERE id = 5`, [codec.encrypt('host2@example.com')]);
  await pool.query(`UPDATE people SET email = $1, email_key_version = $2 WHERE id = 5`, [codec.encrypt('host1@example.com'), loaded]);
  await pool.query(`INSERT INTO people (id, name, email, email_key_version) VALUES (100001, 'x', $1, $2)`, [codec.encrypt('ins@example.com'), loaded]);
  expect([await hint(5), await hint(100001)]).toEqual([null, null]);

  const retire = await ws.run(['keys', 'retire', 'old', '--json']);
  expectExit(retire, 1);
  expect(JSON.parse(retire.stdout)).toMatchObject({ retired: false, unknown: [{ column: 'email', unknown: 2 }] });
  // The next rotation examines both and rewrites them under the new key.
  expectExit(await ws.run(['rotate']), 0);
  expectExit(await ws.run(['verify', '--without', 'old']), 0);
});

it('a value the application wrote under the new key gets its hint back, and is reported as such, not rewritten', async () => {
  const pool = db.current.pool;
  const codec = await bothKeysCodec(); // the application's: primary "new", decrypt-only "old"
  const written = codec.encrypt('app@example.com');
  await pool.query(`UPDATE people SET email = $1 WHERE id = 9`, [written]);
  const rotated = await ws.run(['rotate']);
  expectExit(rotated, 0);
  expect(rotated.stdout).toMatch(/public\.people\.email\s+new \(already; key version set\)\s+1/);
  const row = (await pool.query(`SELECT email, email_key_version IS NOT NULL AS hinted FROM people WHERE id = 9`)).rows[0];
  expect(row).toEqual({ email: written, hinted: true });
});

it('with a guard trigger disabled (or dropped), rotate, verify and keys retire exit 2 naming it; the key is not retired', async () => {
  const pool = db.current.pool;
  expectExit(await ws.run(['verify', '--without', 'old']), 0);
  // A DBA disables the email guard for a bulk load and forgets it; a host still on the old key then writes row 7.
  await pool.query('ALTER TABLE people DISABLE TRIGGER zz_pgrekey_email_kv_reset');
  await pool.query(`UPDATE people SET email = $1 WHERE id = 7`, [(await oldKeyOnly()).encrypt('late@example.com')]);
  const disabled = /public\.people\.email: the key-version guard trigger zz_pgrekey_email_kv_reset is disabled .*ENABLE TRIGGER.*verify --fix-versions/s;
  for (const args of [['keys', 'retire', 'old'], ['rotate'], ['verify']]) {
    const result = await ws.run(args);
    expectExit(result, 2);
    expect(result.stderr, args.join(' ')).toMatch(disabled);
  }
  const state = await pool.query(`SELECT state FROM pgrekey.keys WHERE key_id = 'old'`);
  expect(state.rows).toEqual([{ state: 'active' }]);

  // Dropped: as the too-long recipe does to widen a column, without re-creating it.
  await pool.query('ALTER TABLE people ENABLE TRIGGER zz_pgrekey_email_kv_reset');
  await pool.query('DROP TRIGGER zz_pgrekey_email_kv_reset_ins ON people');
  const retire = await ws.run(['keys', 'retire', 'old']);
  expectExit(retire, 2);
  expect(retire.stderr).toMatch(/the key-version guard trigger zz_pgrekey_email_kv_reset_ins is missing .*target migration/s);
});
