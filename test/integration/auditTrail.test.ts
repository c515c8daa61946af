/**
 * The audit trail (issue 5 §3): `pg-rekey history` as the Rotation History
 * table, finished runs refused UPDATE / DELETE / TRUNCATE by the database, and
 * `history --verify` catching an edited, deleted or reordered run that a
 * superuser wrote with the guard trigger disabled.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database.js';
import { expectExit, prepareRotation, type RotationWorkspace } from '../helpers/rotationFixture.js';

const db = useTestDatabase('audit_trail');
let ws: RotationWorkspace;

interface RunRow {
  id: string;
  kind: string;
  chain_seq: string | null;
}

const finishedRuns = async (): Promise<RunRow[]> =>
  (await db.current.pool.query<RunRow>(`SELECT id, kind, chain_seq FROM pgrekey.runs WHERE chain_seq IS NOT NULL ORDER BY chain_seq`)).rows;

/**
 * Runs `statements` as the superuser with every trigger of the session off
 * (session_replication_role = replica), as someone covering their tracks would.
 */
async function tamper(statements: string[]): Promise<void> {
  const client: pg.PoolClient = await db.current.pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SET LOCAL session_replication_role = replica');
    for (const s of statements) await client.query(s);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK');
    throw err;
  } finally {
    client.release();
  }
}

async function verifyChain(): Promise<{ code: number | null; out: any; human: string }> {
  const json = await ws.run(['history', '--verify', '--json']);
  const human = await ws.run(['history', '--verify']);
  expect(human.code, `${human.stdout}\n${human.stderr}`).toBe(json.code);
  expect(human.stdout, human.stderr).not.toBe('');
  let out: unknown;
  try {
    out = JSON.parse(json.stdout);
  } catch {
    throw new Error(`history --verify --json printed no JSON (exit ${json.code}):\n${json.stdout}\n${json.stderr}`);
  }
  return { code: json.code, out, human: human.stdout };
}

describe('audit trail', () => {
  beforeAll(async () => {
    ws = await prepareRotation(db.current.pool, db.current.url, 300);
    expectExit(await ws.run(['keys', 'add', 'old']), 0);
    expectExit(await ws.run(['rotate', '--emergency', '--reason', 'laptop with the key stolen', '--json']), 0);
    expectExit(await ws.run(['keys', 'promote', 'new', '--reason', 'after emergency rotation']), 0);
    // The primary is now past its rotation interval: the next rotation (a rollback to old) is "scheduled".
    await db.current.pool.query(`UPDATE pgrekey.keys SET promoted_at = now() - interval '100 days' WHERE key_id = 'new'`);
    expectExit(await ws.run(['rotate', '--to', 'old', '--json']), 0);
  });
  afterAll(() => ws?.cleanup());

  it('history prints the Rotation History table with type, trigger, reason, keys, records and actor', async () => {
    const r = await ws.run(['history', '--json']);
    expectExit(r, 0);
    const runs = JSON.parse(r.stdout).runs as any[];
    expect(runs.map((x) => `${x.kind}:${x.trigger}:${x.status}`)).toEqual([
      'add:manual:succeeded', // new: first use, primary
      'add:manual:succeeded', // old
      'rotate:emergency:succeeded',
      'promote:manual:succeeded',
      'rotate:scheduled:succeeded',
    ]);
    const emergency = runs[2];
    expect(emergency).toMatchObject({ reason: 'laptop with the key stolen', targetKey: 'new', rowsChanged: 300, rowsExamined: 300 });
    expect(emergency.sourceKeys).toContain('old');
    expect(emergency.actor.dbUser).toBeTruthy();

    const human = await ws.run(['history']);
    expectExit(human, 0);
    const lines = human.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^DATE \(UTC\)\s+TYPE\s+TRIGGER\s+REASON\s+KEYS\s+DURATION\s+RECORDS\s+STATUS\s+ACTOR$/);
    const rotateLine = lines.find((l) => l.includes('rotate') && l.includes('emergency'))!;
    expect(rotateLine).toMatch(/rotate\s+emergency\s+laptop with the key stolen\s+old.* → new\s+\S+s\s+300\/300\s+succeeded/);

    const limited = JSON.parse((await ws.run(['history', '--json', '--limit', '2'])).stdout).runs as any[];
    expect(limited.map((x) => x.kind)).toEqual(['promote', 'rotate']);
    const future = JSON.parse((await ws.run(['history', '--json', '--since', '2999-01-01'])).stdout).runs;
    expect(future).toEqual([]);
    expectExit(await ws.run(['history', '--since', 'yesterday-ish']), 2);
  });

  it('every finished run is a link of the chain, and history --verify passes', async () => {
    const runs = await finishedRuns();
    expect(runs.map((r) => Number(r.chain_seq))).toEqual([1, 2, 3, 4, 5]);
    const { code, out, human } = await verifyChain();
    expect(code).toBe(0);
    expect(out).toMatchObject({ ok: true, links: 5, head: { seq: 5 } });
    expect(human).toContain('Audit trail intact');
  });

  it('the database refuses UPDATE, DELETE and TRUNCATE of finished runs', async () => {
    const pool = db.current.pool;
    const [first] = await finishedRuns();
    await expect(pool.query(`UPDATE pgrekey.runs SET reason = 'nothing happened' WHERE id = $1`, [first!.id])).rejects.toMatchObject({
      code: '55000',
      message: expect.stringContaining('append-only'),
    });
    await expect(pool.query(`UPDATE pgrekey.runs SET status = 'failed' WHERE kind = 'rotate'`)).rejects.toMatchObject({ code: '55000' });
    await expect(pool.query(`DELETE FROM pgrekey.runs WHERE id = $1`, [first!.id])).rejects.toMatchObject({ code: '55000' });
    await expect(pool.query(`TRUNCATE pgrekey.runs CASCADE`)).rejects.toMatchObject({ code: '55000' });
    // An open run is still the rotator's to update, and joins the chain when it finishes.
    const open = await pool.query<{ id: string }>(`INSERT INTO pgrekey.runs (kind) VALUES ('verify') RETURNING id`);
    const id = open.rows[0]!.id;
    await pool.query(`UPDATE pgrekey.runs SET rows_examined = 7 WHERE id = $1`, [id]);
    const done = await pool.query(
      `UPDATE pgrekey.runs SET status = 'succeeded', finished_at = now() WHERE id = $1 RETURNING chain_seq::int, row_hash`,
      [id],
    );
    expect(done.rows[0]).toMatchObject({ chain_seq: 6, row_hash: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect((await verifyChain()).code).toBe(0);
  });

  it('history --verify exits 1 naming an edited run; restoring it passes again', async () => {
    const runs = await finishedRuns();
    const victim = runs.find((r) => r.kind === 'rotate')!;
    await tamper([
      `CREATE TEMP TABLE saved ON COMMIT DROP AS SELECT reason FROM pgrekey.runs WHERE id = ${victim.id}`,
      `UPDATE pgrekey.runs SET reason = 'scheduled maintenance' WHERE id = ${victim.id}`,
    ]);
    const broken = await verifyChain();
    expect(broken.code).toBe(1);
    expect(broken.out.problems).toHaveLength(1);
    expect(broken.out.problems[0]).toMatchObject({ kind: 'edited', runId: Number(victim.id) });
    expect(broken.human).toContain(`run ${victim.id} (link ${victim.chain_seq}) does not match its hash`);
    await tamper([`UPDATE pgrekey.runs SET reason = 'laptop with the key stolen' WHERE id = ${victim.id}`]);
    expect((await verifyChain()).code).toBe(0);
  });

  it('history --verify exits 1 on a deleted run, in the middle or the newest', async () => {
    const runs = await finishedRuns();
    const middle = runs[1]!; // an "add" run: nothing references it
    await tamper([
      `CREATE TABLE public.saved_run AS SELECT * FROM pgrekey.runs WHERE id = ${middle.id}`,
      `DELETE FROM pgrekey.runs WHERE id = ${middle.id}`,
    ]);
    const gap = await verifyChain();
    expect(gap.code).toBe(1);
    expect(gap.out.problems[0]).toMatchObject({ kind: 'missing', runId: Number(runs[2]!.id) });
    expect(gap.human).toContain(`link ${middle.chain_seq} is missing before run ${runs[2]!.id}`);
    await tamper([`INSERT INTO pgrekey.runs OVERRIDING SYSTEM VALUE SELECT * FROM public.saved_run`, 'DROP TABLE public.saved_run']);
    expect((await verifyChain()).code).toBe(0);

    const newest = runs[runs.length - 1]!;
    await tamper([`DELETE FROM pgrekey.runs WHERE id = ${newest.id}`]);
    const tail = await verifyChain();
    expect(tail.code).toBe(1);
    expect(tail.out.problems[0]).toMatchObject({ kind: 'head' });
    expect(tail.human).toContain(`the newest link (${newest.chain_seq}) is missing`);
  });

  it('history --verify exits 1 on reordered runs, naming the first of them', async () => {
    // Restore a consistent trail first: the previous test left the newest link deleted.
    await tamper([`UPDATE pgrekey.run_chain SET last_seq = last_seq - 1, last_hash = (SELECT row_hash FROM pgrekey.runs WHERE chain_seq = (SELECT last_seq - 1 FROM pgrekey.run_chain))`]);
    expect((await verifyChain()).code).toBe(0);
    const runs = await finishedRuns();
    const [a, b] = [runs[2]!, runs[3]!];
    await tamper([
      `UPDATE pgrekey.runs SET chain_seq = -1 WHERE id = ${a.id}`,
      `UPDATE pgrekey.runs SET chain_seq = ${a.chain_seq} WHERE id = ${b.id}`,
      `UPDATE pgrekey.runs SET chain_seq = ${b.chain_seq} WHERE id = ${a.id}`,
    ]);
    const swapped = await verifyChain();
    expect(swapped.code).toBe(1);
    expect(swapped.out.problems[0]).toMatchObject({ kind: 'edited', runId: Number(b.id), chainSeq: Number(a.chain_seq) });
    // Swapping the stored hashes along with the positions does not help either.
    await tamper([
      `UPDATE pgrekey.runs SET row_hash = x.h FROM (SELECT id, row_hash AS h FROM pgrekey.runs) AS x
        WHERE (pgrekey.runs.id, x.id) IN ((${a.id}, ${b.id}), (${b.id}, ${a.id}))`,
    ]);
    expect((await verifyChain()).code).toBe(1);
  });

  it('history --verify exits 1 when every run was deleted: the chain head still counts the links', async () => {
    const head = (await db.current.pool.query<{ seq: string }>(`SELECT last_seq AS seq FROM pgrekey.run_chain`)).rows[0]!.seq;
    await tamper([`DELETE FROM pgrekey.runs`]);
    const empty = await verifyChain();
    expect(empty.code).toBe(1);
    expect(empty.out).toMatchObject({ ok: false, links: 0, problems: [{ kind: 'head', chainSeq: Number(head) }] });
    expect(empty.human).toContain(`the newest links (1–${head}) are missing: deleted`);
  });

  it('history --verify names a finished run that is not in the chain (written with the CHECK dropped and triggers off)', async () => {
    await tamper([
      'ALTER TABLE pgrekey.runs DROP CONSTRAINT runs_chained_when_finished',
      `INSERT INTO pgrekey.runs (kind, status, finished_at, reason) VALUES ('verify', 'succeeded', now(), 'forged')`,
    ]);
    const forged = (await db.current.pool.query<{ id: string }>(`SELECT id FROM pgrekey.runs WHERE reason = 'forged'`)).rows[0]!;
    const result = await verifyChain();
    expect(result.code).toBe(1);
    expect(result.out.problems).toContainEqual(expect.objectContaining({ kind: 'unlinked', runId: Number(forged.id), chainSeq: null }));
    expect(result.human).toContain(`run ${forged.id} is succeeded but not in the chain`);
  });
});
