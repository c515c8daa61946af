/**
 * A ciphertext whose text gained leading whitespace (a space from a copy-paste,
 * a byte-order mark from a CSV export/import) lacks the format's prefix, but
 * it is not plaintext: `verify` must not count it as PLAINTEXT (whose advice is
 * `rotate --encrypt-legacy`), and `rotate --encrypt-legacy` must not encrypt it
 * as if it were an email — the application would then decrypt a ciphertext as
 * the user's address, and verify would call the row healthy from then on.
 */
import { deflateSync } from 'node:zlib';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database.js';
import { expectExit, prepareRotation, type RotationWorkspace } from '../helpers/rotationFixture.js';

const db = useTestDatabase('ws_ciphertext');
let ws: RotationWorkspace;
const encV1 = (text: string) => `ENC_V1:${deflateSync(Buffer.from(text, 'utf8')).toString('base64url')}`;
// The damaged values, by "id.column", as staged.
const damaged: Record<string, string> = {};

beforeAll(async () => {
  ws = await prepareRotation(db.current.pool, db.current.url, 20);
  const pool = db.current.pool;
  await pool.query(`UPDATE people SET email = ' ' || email WHERE id = 3`);
  await pool.query(`UPDATE people SET email = E'\\uFEFF' || email WHERE id = 4`);
  await pool.query(`UPDATE people SET mobno = $1 WHERE id = 5`, [`\n${encV1('+15550005555')}`]);
  const { rows } = await pool.query(`SELECT id, email, mobno FROM people WHERE id IN (3, 4, 5) ORDER BY id`);
  Object.assign(damaged, { '3.email': rows[0].email, '4.email': rows[1].email, '5.mobno': rows[2].mobno });
});
afterAll(() => ws?.cleanup());

it('verify reports a ciphertext with leading whitespace as malformed, not as plaintext', async () => {
  const result = await ws.run(['verify', '--json']);
  expectExit(result, 1);
  const report = JSON.parse(result.stdout);
  const brief = report.findings.map((f: { column: string; rowKey: { id: string }; reason: string }) => `${f.rowKey.id}.${f.column}: ${f.reason}`);
  expect(brief.sort()).toEqual(['3.email: malformed', '4.email: malformed', '5.mobno: legacy-malformed']);
});

it('rotate --encrypt-legacy leaves them as they are and records them as failures', async () => {
  const result = await ws.run(['rotate', '--encrypt-legacy', '--json']);
  expectExit(result, 1);
  const failures = await db.current.pool.query(
    `SELECT f.row_key->>'id' || '.' || f.column_name || ': ' || f.reason AS f
       FROM pgrekey.failures AS f JOIN pgrekey.runs AS r ON r.id = f.run_id WHERE r.kind = 'rotate' ORDER BY 1`,
  );
  expect(failures.rows.map((r) => r.f)).toEqual(['3.email: malformed', '4.email: malformed', '5.mobno: legacy-malformed']);
  const { rows } = await db.current.pool.query(`SELECT id, email, mobno FROM people WHERE id IN (3, 4, 5) ORDER BY id`);
  expect({ '3.email': rows[0].email, '4.email': rows[1].email, '5.mobno': rows[2].mobno }).toEqual(damaged);
});
