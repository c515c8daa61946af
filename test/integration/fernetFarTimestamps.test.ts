/**
 * Fernet tokens whose timestamp is far in the future — a writer that passed
 * milliseconds where Fernet wants seconds (Python:
 * `Fernet(k).encrypt_at_time(data, int(time.time() * 1000))`) — are valid
 * tokens: pyca/cryptography decrypts them (it checks timestamps only under a
 * TTL, which rotation never enforces), and pg-rekey's own encrypt() writes them.
 * They no longer start with "gAAAAA" (the timestamp's high bytes are not zero),
 * which must not make a `fernet` column's token "plaintext": verify would call
 * it unencrypted and `rotate --encrypt-legacy` would encrypt the token itself
 * as the user's data. Each must be read and rotated like any other token,
 * keeping its timestamp (as MultiFernet.rotate does).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createCodecFromKeyring, keyringFromResolved } from '../../src/index.js';
import { useTestDatabase } from '../helpers/database.js';
import { createProject, jsonOf, type TestProject } from '../cli/project.js';

const db = useTestDatabase('fernet_far_ts');
let project: TestProject;
const codec = () =>
  createCodecFromKeyring('fernet', keyringFromResolved('fernet', ['new', 'old'].map((id) => ({ id, secret: project.secrets[id]! }))));
// Milliseconds since the epoch (2026), and a timestamp past 2^36 s.
const MS_CLOCK = 1_795_905_394_855;
const TIMESTAMPS: Record<number, number> = { 1: 1_795_905_394, 2: MS_CLOCK, 3: 2 ** 40 + 7 };

beforeAll(async () => {
  project = await createProject(db.current.url, { keyIds: ['new', 'old'] });
  const c = codec();
  const values = Object.entries(TIMESTAMPS).map(([id, ts]) => [Number(id), c.encrypt(`user${id}@example.com`, { keyId: 'old', timestamp: ts })]);
  expect(values[1]![1]).not.toMatch(/^gAAAAA/);
  await db.current.pool.query(`CREATE TABLE people (id int PRIMARY KEY, email text)`);
  for (const [id, email] of values) await db.current.pool.query('INSERT INTO people VALUES ($1, $2)', [id, email]);
  for (const args of [['migrate', 'up'], ['target', 'add', '--table', 'people', '--columns', 'email', '--format', 'fernet'], ['migrate', 'up']]) {
    const r = await project.cli(args);
    expect(r.code, r.stderr).toBe(0);
  }
});
afterAll(() => project?.remove());

it('verify reads them under their key, not as plaintext', async () => {
  const r = await project.cli(['verify', '--json']);
  expect(r.code, r.stdout + r.stderr).toBe(0);
  expect(jsonOf(r).columns[0]).toMatchObject({ byKey: { old: 3 }, plaintext: 0, failed: {} });
});

it('rotate --encrypt-legacy re-encrypts them to the new key, keeping each timestamp', async () => {
  const r = await project.cli(['rotate', '--encrypt-legacy', '--json']);
  expect(r.code, r.stdout + r.stderr).toBe(0);
  expect(jsonOf(r).bySource['public.people'].email).toEqual({ old: 3 });
  const { rows } = await db.current.pool.query('SELECT id, email FROM people ORDER BY id');
  const c = codec();
  for (const row of rows) {
    expect(c.decrypt(row.email)).toEqual({ plaintext: `user${row.id}@example.com`, keyId: 'new', timestamp: TIMESTAMPS[row.id] });
  }
});
