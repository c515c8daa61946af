/**
 * An aes-256-gcm key is 32 bytes in base64 of either alphabet, padded or not:
 * one key has four spellings. A new key id whose secret is a registered key in
 * another spelling (the leaked one, pasted from another tool) is the same key,
 * and is refused as keyReuse.test.ts refuses the same secret: a rotation to it
 * would report success while every value stayed under the old key.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { generateKey } from '../../src/crypto/generateKey.js';
import { useTestDatabase } from '../helpers/database.js';
import { createProject, type TestProject } from './project.js';

const db = useTestDatabase('cli_aes_spelling');
let project: TestProject;
const OLD = generateKey('aes-256-gcm');
// The same 32 bytes, url-safe and unpadded.
const RESPELLED = Buffer.from(OLD, 'base64').toString('base64url');

beforeAll(async () => {
  await db.current.pool.query('CREATE TABLE public.cards (id int PRIMARY KEY, pan text)');
  project = await createProject(db.current.url, { keyIds: ['old'] });
  project.env.PGREKEY_TEST_KEY_OLD = OLD;
  for (const args of [['target', 'add', '--table', 'cards', '--columns', 'pan', '--format', 'aes-256-gcm'], ['migrate', 'up'], ['keys', 'add', 'old']]) {
    const r = await project.cli(args);
    expect(r.code, r.stderr).toBe(0);
  }
  const config = await project.readConfig();
  await project.writeConfig({ ...config, keys: [...(config.keys as object[]), { id: 'new', secret: 'env:PGREKEY_TEST_KEY_NEW' }] });
  project.env.PGREKEY_TEST_KEY_NEW = RESPELLED;
});
afterAll(() => project?.remove());

test('a new key id with a registered aes-256-gcm key in another spelling is refused, and nothing is registered', async () => {
  expect(RESPELLED).not.toBe(OLD);
  const runs = async () => (await db.current.pool.query('SELECT (SELECT count(*) FROM pgrekey.runs)::int AS runs, (SELECT count(*) FROM pgrekey.keys)::int AS keys')).rows[0];
  const before = await runs();
  for (const args of [['keys', 'add', 'new'], ['keys', 'promote', 'new'], ['rotate', '--to', 'new']]) {
    const result = await project.cli(args);
    expect(result.code, `${args.join(' ')}: ${result.stdout}${result.stderr}`).toBe(2);
    expect(result.stderr).toContain('key new has the same secret as the registered key old (active)');
    expect(result.stdout + result.stderr).not.toContain(RESPELLED);
  }
  expect(await runs()).toEqual(before);
});
