/**
 * The key lifecycle (issue 3 §4): registration by fingerprint, promote, retire
 * refused while referenced, the rotation schedule, a wrong secret stopping
 * everything before a write, and the audit trail in runs.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { generateKey } from '../../src/crypto/generateKey.js';
import { asKeyVersionWriter, useTestDatabase } from '../helpers/database.js';
import { createProject, jsonOf, type TestProject } from './project.js';

const db = useTestDatabase('cli_keys');
let project: TestProject;

const counts = async () =>
  (
    await db.current.pool.query(
      'SELECT (SELECT count(*)::int FROM pgrekey.keys) AS keys, (SELECT count(*)::int FROM pgrekey.runs) AS runs',
    )
  ).rows[0] as { keys: number; runs: number };

const keyRow = async (id: string) =>
  (await db.current.pool.query('SELECT version, state, is_primary FROM pgrekey.keys WHERE key_id = $1', [id])).rows[0];

beforeAll(async () => {
  await db.current.pool.query(`
    CREATE TABLE public.people (id int PRIMARY KEY, email text);
    INSERT INTO public.people SELECT g, 'gAAAAA' || g FROM generate_series(1, 50) AS g;
  `);
  project = await createProject(db.current.url, { keyIds: ['k1', 'k2', 'k3'] });
  const add = await project.cli(['target', 'add', '--table', 'people', '--columns', 'email', '--format', 'fernet']);
  expect(add.code, add.stderr).toBe(0);
  const up = await project.cli(['migrate', 'up']);
  expect(up.code, up.stderr).toBe(0);
});

afterAll(async () => {
  await project?.remove();
});

describe('keys lifecycle', () => {
  test('keys add registers a configured key ahead of time, fingerprint only', async () => {
    const r = await project.cli(['keys', 'add', 'k2', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(jsonOf(r)).toMatchObject({ key: 'k2', added: true, primary: false });
    expect(await keyRow('k2')).toMatchObject({ state: 'active', is_primary: false });
    const again = await project.cli(['keys', 'add', 'k2']);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('already registered');
    const unknown = await project.cli(['keys', 'add', 'nope']);
    expect(unknown.code).toBe(2);
  });

  test('keys list shows registered and unregistered keys, and no secret', async () => {
    const r = await project.cli(['keys', 'list']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/k2\s+[0-9a-f]{32}\s+active/);
    expect(r.stdout).toMatch(/k1\s+[0-9a-f]{32}\s+unregistered/);
    expect(r.stdout).toContain('public.people.email');
    for (const secret of Object.values(project.secrets)) {
      expect(r.stdout + r.stderr).not.toContain(secret);
    }
  });

  test('promote registers a first-used key and moves the primary', async () => {
    const first = await project.cli(['keys', 'promote', 'k1', '--json']);
    expect(first.code, first.stderr).toBe(0);
    expect(await keyRow('k1')).toMatchObject({ is_primary: true });
    const r = await project.cli(['keys', 'promote', 'k2', '--reason', 'quarterly', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(jsonOf(r)).toMatchObject({ key: 'k2', previousPrimary: 'k1', alreadyPrimary: false });
    expect(await keyRow('k2')).toMatchObject({ is_primary: true, state: 'active' });
    expect(await keyRow('k1')).toMatchObject({ is_primary: false, state: 'active' });
  });

  test('keys list --check-due exits 0 when fresh and 1 when the primary is older than the interval', async () => {
    const fresh = await project.cli(['keys', 'list', '--check-due', '--json']);
    expect(fresh.code, fresh.stderr).toBe(0);
    expect(jsonOf(fresh).due).toMatchObject({ primary: 'k2', overdue: false, intervalDays: 90 });
    await db.current.pool.query(`UPDATE pgrekey.keys SET promoted_at = now() - interval '91 days' WHERE key_id = 'k2'`);
    const due = await project.cli(['keys', 'list', '--check-due']);
    expect(due.code).toBe(1);
    expect(due.stdout).toContain('OVERDUE');
    await db.current.pool.query(`UPDATE pgrekey.keys SET promoted_at = now() WHERE key_id = 'k2'`);
  });

  test('retire is refused (exit 1, with counts) while rows reference the key or are unknown', async () => {
    const pool = db.current.pool;
    const v1 = (await keyRow('k1')).version;
    const v2 = (await keyRow('k2')).version;
    await asKeyVersionWriter(pool, 'UPDATE public.people SET email_key_version = $1 WHERE id <= 20', [v1]);
    const r = await project.cli(['keys', 'retire', 'k1', '--json']);
    expect(r.code, r.stderr).toBe(1);
    const out = jsonOf(r);
    expect(out.retired).toBe(false);
    expect(out.referencing[0]).toMatchObject({ target: 'public.people', column: 'email', byKey: { k1: 20 } });
    expect(out.unknown[0]).toMatchObject({ unknown: 30 });
    const human = await project.cli(['keys', 'retire', 'k1']);
    expect(human.stdout).toContain('20 row(s) encrypted with k1');
    expect(await keyRow('k1')).toMatchObject({ state: 'active' });
    // The database refuses it too, whatever the client.
    await expect(
      pool.query(`UPDATE pgrekey.keys SET state = 'retired', retired_at = now() WHERE key_id = 'k1'`),
    ).rejects.toMatchObject({ code: '23503' });
    // Unknown rows alone also block retiring.
    await asKeyVersionWriter(pool, 'UPDATE public.people SET email_key_version = $1 WHERE id <= 20', [v2]);
    expect((await project.cli(['keys', 'retire', 'k1'])).code).toBe(1);
  });

  test('the primary cannot be retired; an unreferenced key can, after a retirement rehearsal', async () => {
    const primary = await project.cli(['keys', 'retire', 'k2']);
    expect(primary.code).toBe(2);
    expect(primary.stderr).toContain('promote another key first');
    const v2 = (await keyRow('k2')).version;
    await asKeyVersionWriter(db.current.pool, 'UPDATE public.people SET email_key_version = $1', [v2]);
    // Unreferenced is not enough: the retire gate wants a passed "verify --without k1".
    const gated = await project.cli(['keys', 'retire', 'k1']);
    expect(gated.code, gated.stderr).toBe(1);
    expect(gated.stdout).toContain('run "pg-rekey verify --without k1"');
    // This table holds placeholder values, not ciphertexts, so a real verify would
    // fail; record the rehearsal the way verify does (test/integration/retireGate
    // runs the real command).
    await db.current.pool.query(
      `INSERT INTO pgrekey.runs (kind, targets, options, status, finished_at)
       VALUES ('verify', '{public.people.email,public.people.mobno}', '{"without": ["k1"], "sampled": false, "partial": false}', 'succeeded', now())`,
    );
    const r = await project.cli(['keys', 'retire', 'k1', '--reason', 'grace period over']);
    expect(r.code, r.stderr).toBe(0);
    expect(await keyRow('k1')).toMatchObject({ state: 'retired', is_primary: false });
    const promoteRetired = await project.cli(['keys', 'promote', 'k1']);
    expect(promoteRetired.code).toBe(2);
    expect(promoteRetired.stderr).toContain('retired');
  });

  test('a wrong secret for a registered id exits 2 and writes nothing', async () => {
    const before = await counts();
    const wrong = { [Object.keys(project.env).find((k) => k.endsWith('_K2'))!]: generateKey('fernet') };
    for (const args of [['keys', 'list'], ['keys', 'add', 'k3'], ['keys', 'promote', 'k3'], ['keys', 'retire', 'k3']]) {
      const r = await project.cli(args, { env: wrong });
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toContain('key k2 does not match the registered key k2 — is the right secret deployed?');
      expect(r.stderr).not.toContain(wrong[Object.keys(wrong)[0]!]!);
    }
    expect(await counts()).toEqual(before);
    expect(await keyRow('k3')).toBeUndefined();
  });

  test('a repeated --reason exits 2 and records nothing (the audit trail is append-only)', async () => {
    const before = await counts();
    for (const args of [['keys', 'promote', 'k2'], ['keys', 'retire', 'k3']]) {
      const r = await project.cli([...args, '--reason', 'first', '--reason', 'second']);
      expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(2);
      expect(r.stderr).toContain('--reason is given more than once');
    }
    expect(await counts()).toEqual(before);
  });

  test('every lifecycle action appears in runs, with the actor', async () => {
    const runs = await db.current.pool.query(
      `SELECT kind, target_key, status, reason, actor_os_user, actor_host, actor_db_user FROM pgrekey.runs ORDER BY id`,
    );
    const summary = runs.rows.map((r) => `${r.kind}:${r.target_key}:${r.status}`);
    expect(summary).toEqual([
      'add:k2:succeeded',
      'add:k1:succeeded', // first use by "promote k1"
      'promote:k1:succeeded',
      'promote:k2:succeeded',
      'retire:k1:failed',
      'retire:k1:failed',
      'retire:k1:failed',
      'retire:k1:failed', // gated: no rehearsal yet
      'verify:null:succeeded',
      'retire:k1:succeeded',
    ]);
    expect(runs.rows.find((r) => r.kind === 'promote' && r.target_key === 'k2').reason).toBe('quarterly');
    for (const r of runs.rows.filter((row) => row.kind !== 'verify')) {
      expect(r.actor_host).toBeTruthy();
      expect(r.actor_db_user).toBeTruthy();
    }
  });
});
