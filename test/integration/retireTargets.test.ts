/**
 * `keys retire` decides on every key-version column of the database, not on
 * whatever config it is run with: a retirement rehearsal counts only if it read
 * every column retire checks, and a config that lacks a migrated target is
 * refused. (A cron host's older copy of the config is the usual way to get there.)
 */
import { copyFile } from 'node:fs/promises';
import path from 'node:path';
import { expect, it } from 'vitest';
import { createCodec } from '../../src/crypto/createCodec.js';
import { asKeyVersionWriter } from '../helpers/database.js';
import { expectExit, OLD_SECRET, seedPeople, useFreshRotations } from '../helpers/rotationFixture.js';

const fresh = useFreshRotations();

/** A value under the old key, as an application still holding only that key writes it. */
async function encryptedUnderOld(plaintext: string): Promise<string> {
  const codec = await createCodec({ format: 'django-fernet-v1', keys: [{ id: 'old', secret: 'env:OLD' }], env: { OLD: OLD_SECRET } });
  return codec.encrypt(plaintext);
}

/** people and people2 as targets, rotated to the new key; `people-only.json` is the config from before people2. */
async function twoTargetsRotated(label: string) {
  const { db, ws } = await fresh(label, 100);
  await copyFile(path.join(ws.dir, 'pg-rekey.config.json'), path.join(ws.dir, 'people-only.json'));
  await seedPeople(db.pool, 100, { table: 'people2' });
  expectExit(await ws.run(['target', 'add', '--table', 'public.people2', '--columns', 'email,mobno', '--format', 'django-fernet-v1']), 0);
  expectExit(await ws.run(['migrate', 'up']), 0);
  expectExit(await ws.run(['keys', 'add', 'old']), 0);
  expectExit(await ws.run(['rotate']), 0);
  return { db, ws };
}

it('a rehearsal that did not read every target does not open the gate', async () => {
  const { db, ws } = await twoTargetsRotated('retire_rehearsal_targets');
  // A people2 value under the old key whose hint says otherwise (as only a
  // buggy pg-rekey could write it): what only the rehearsal catches.
  await asKeyVersionWriter(db.pool, 
    `INSERT INTO people2 (id, name, email, email_key_version) VALUES (1001, 'x', $1, (SELECT version FROM pgrekey.keys WHERE key_id = 'new'))`,
    [await encryptedUnderOld('x@example.com')],
  );
  expectExit(await ws.run(['verify', '--without', 'old']), 1);
  expectExit(await ws.run(['verify', '--without', 'old', '--config', 'people-only.json']), 0);
  const retire = await ws.run(['keys', 'retire', 'old', '--json']);
  expectExit(retire, 1);
  expect(JSON.parse(retire.stdout)).toMatchObject({ retired: false, gate: { satisfied: false } });
  const state = await db.pool.query(`SELECT state FROM pgrekey.keys WHERE key_id = 'old'`);
  expect(state.rows).toEqual([{ state: 'active' }]);
});

it('a config that lacks a migrated target cannot retire a key', async () => {
  const { db, ws } = await twoTargetsRotated('retire_config_targets');
  // The application writes a people2 value under the old key: its hint becomes unknown.
  await db.pool.query(`UPDATE people2 SET email = $1 WHERE id = 3`, [await encryptedUnderOld('x@example.com')]);
  expectExit(await ws.run(['verify', '--without', 'old', '--config', 'people-only.json']), 0);
  const retire = await ws.run(['keys', 'retire', 'old', '--config', 'people-only.json']);
  expectExit(retire, 2);
  expect(retire.stderr).toMatch(/public\.people2\.email_key_version, public\.people2\.mobno_key_version reference the key registry/);
  const state = await db.pool.query(`SELECT state FROM pgrekey.keys WHERE key_id = 'old'`);
  expect(state.rows).toEqual([{ state: 'active' }]);
});
