/**
 * A ciphertext whose text was altered on its way into the column — whitespace
 * or a newline before it, as an export/import or a copy-paste leaves it — is
 * not plain text. `rotate --encrypt-legacy` must leave it alone and report it:
 * encrypting it would wrap the old ciphertext, whose plaintext is lost for
 * good once its key is retired, while verify saw nothing wrong.
 */
import { describe, expect, it } from 'vitest';
import { bothKeysCodec, expectExit, useFreshRotations } from '../helpers/rotationFixture.js';

const fresh = useFreshRotations();

describe('a ciphertext with whitespace before it', () => {
  it('is reported as malformed and left untouched by rotate --encrypt-legacy and verify, not encrypted as plaintext', async () => {
    const { db, ws } = await fresh('altered_ciphertext', 50);
    // Row 6: the application's own format after a space; row 7: after a newline.
    await db.pool.query(`UPDATE people SET email = ' ' || email WHERE id = 6`);
    await db.pool.query(`UPDATE people SET email = E'\\n' || email WHERE id = 7`);
    const before = (await db.pool.query<{ id: string; email: string }>(`SELECT id, email FROM people WHERE id IN (6, 7) ORDER BY id`)).rows;

    const rotated = await ws.run(['rotate', '--encrypt-legacy', '--json']);
    expectExit(rotated, 1);
    expect(JSON.parse(rotated.stdout).bySource['public.people'].email).toEqual({ old: 48 });
    const failures = await db.pool.query(`SELECT row_key->>'id' AS id, column_name AS column, reason FROM pgrekey.failures ORDER BY 1`);
    expect(failures.rows).toEqual([
      { id: '6', column: 'email', reason: 'malformed' },
      { id: '7', column: 'email', reason: 'malformed' },
    ]);
    const after = (await db.pool.query<{ id: string; email: string }>(`SELECT id, email FROM people WHERE id IN (6, 7) ORDER BY id`)).rows;
    expect(after).toEqual(before);
    // Trimmed, each is still the value the application wrote under the old key.
    const codec = await bothKeysCodec();
    expect(after.map((r) => codec.decrypt(r.email.trimStart()))).toMatchObject([
      { plaintext: 'user6@example.com', keyId: 'old' },
      { plaintext: 'user7@example.com', keyId: 'old' },
    ]);

    const verified = await ws.run(['verify', '--json']);
    expectExit(verified, 1);
    const email = JSON.parse(verified.stdout).columns.find((c: { column: string }) => c.column === 'email');
    expect(email).toMatchObject({ plaintext: 0, failed: { malformed: 2 } });
  }, 120_000);
});
