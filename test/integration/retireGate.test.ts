/**
 * The retire gate (issue 5 §2): `keys retire old` is refused until a
 * successful, full `verify --without old` is recorded after the last rotation
 * or key change, then succeeds. Uses the real `pg-rekey verify`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database.js';
import { expectExit, prepareRotation, type RotationWorkspace } from '../helpers/rotationFixture.js';

const db = useTestDatabase('retire_gate');
let ws: RotationWorkspace;

const oldState = async () =>
  (await db.current.pool.query<{ state: string }>(`SELECT state FROM pgrekey.keys WHERE key_id = 'old'`)).rows[0]!.state;

async function retire(): Promise<{ code: number | null; out: any; human: string }> {
  const json = await ws.run(['keys', 'retire', 'old', '--json']);
  return { code: json.code, out: json.code === 0 || json.code === 1 ? JSON.parse(json.stdout) : null, human: json.stdout + json.stderr };
}

describe('retire gate', () => {
  beforeAll(async () => {
    ws = await prepareRotation(db.current.pool, db.current.url, 400);
    expectExit(await ws.run(['keys', 'add', 'old']), 0);
  });
  afterAll(() => ws?.cleanup());

  it('before rotation: verify --without old fails and retire is refused', async () => {
    expectExit(await ws.run(['verify', '--without', 'old']), 1);
    const r = await retire();
    expect(r.code).toBe(1);
    expect(r.out).toMatchObject({ retired: false, gate: { satisfied: false } });
    // Key versions are still unknown (NULL) before the first rotation: that alone blocks it too.
    expect(r.out.referencing.length + r.out.unknown.length).toBeGreaterThan(0);
    expect(await oldState()).toBe('active');
  });

  it('after rotation, retire is still refused until verify --without old passes', async () => {
    expectExit(await ws.run(['rotate', '--json']), 0);
    const r = await retire();
    expect(r.code).toBe(1);
    // No row references old any more: the gate alone refuses, and says what to run.
    expect(r.out).toMatchObject({ referencing: [], unknown: [], gate: { satisfied: false, lastChange: { kind: 'rotate' } } });
    const human = await ws.run(['keys', 'retire', 'old']);
    expectExit(human, 1);
    expect(human.stdout).toContain('run "pg-rekey verify --without old"');
    // The rehearsal that ran before the rotation failed, and is older than it anyway.
    expect(await oldState()).toBe('active');
  });

  it('a sampled rehearsal does not count', async () => {
    expectExit(await ws.run(['verify', '--without', 'old', '--sample', '50']), 0);
    expect((await retire()).code).toBe(1);
  });

  it('a promotion after the rehearsal closes the gate again', async () => {
    expectExit(await ws.run(['verify', '--without', 'old']), 0);
    expectExit(await ws.run(['keys', 'promote', 'new', '--reason', 'redeploy']), 0);
    const r = await retire();
    expect(r.code).toBe(1);
    expect(r.out.gate).toMatchObject({ satisfied: false, lastChange: { kind: 'promote' } });
  });

  it('a key-version repair (verify --fix-versions) after the rehearsal closes the gate again', async () => {
    expectExit(await ws.run(['verify', '--without', 'old']), 0);
    await db.current.pool.query('UPDATE people SET email_key_version = NULL WHERE id = 7');
    const fix = await ws.run(['verify', '--fix-versions']);
    expectExit(fix, 0); // a repaired hint is not a failure
    const r = await retire();
    expect(r.code).toBe(1);
    expect(r.out).toMatchObject({ unknown: [], gate: { satisfied: false, lastChange: { kind: 'fix-versions' } } });
  });

  it('after a full verify --without old passes, retire succeeds and names the rehearsal', async () => {
    const verify = await ws.run(['verify', '--without', 'old', '--json']);
    expectExit(verify, 0);
    const r = await retire();
    expect(r.code, r.human).toBe(0);
    expect(r.out).toMatchObject({ retired: true, key: 'old' });
    expect(r.out.gate.verifyRunId).toBeGreaterThan(0);
    expect(await oldState()).toBe('retired');
    const runs = await db.current.pool.query(
      `SELECT kind, status FROM pgrekey.runs WHERE kind IN ('retire', 'verify') ORDER BY id`,
    );
    expect(runs.rows.map((x) => `${x.kind}:${x.status}`)).toEqual([
      'verify:failed',
      'retire:failed',
      'retire:failed',
      'retire:failed',
      'verify:succeeded', // sampled
      'retire:failed',
      'verify:succeeded',
      'retire:failed',
      'verify:succeeded',
      'verify:succeeded', // --fix-versions
      'retire:failed',
      'verify:succeeded',
      'retire:succeeded',
    ]);
  });
});
