import { deflateSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCodec } from '../../src/crypto/createCodec.js';
import { asKeyVersionWriter, useTestDatabase } from '../helpers/database.js';
import { bothKeysCodec, expectExit, plaintextsOf, prepareRotation, type RotationWorkspace } from '../helpers/rotationFixture.js';

const db = useTestDatabase('verify');
let ws: RotationWorkspace;
const ROWS = 700;
const NULL_MOBNOS = Math.floor(ROWS / 7);

interface Finding {
  target: string;
  column: string;
  rowKey: Record<string, string>;
  reason: string;
  hintKey?: string;
  decryptedBy?: string;
  withheldKey?: string;
  fixed?: boolean;
}

/** Runs verify with --json and returns the exit code and the parsed report. */
async function verifyJson(...args: string[]) {
  const result = await ws.run(['verify', '--json', ...args]);
  expect(result.code === 0 || result.code === 1, `exit ${result.code}\n${result.stdout}\n${result.stderr}`).toBe(true);
  return { result, report: JSON.parse(result.stdout) };
}

const column = (report: { columns: { column: string }[] }, name: string) => report.columns.find((c) => c.column === name) as any;

async function lastVerifyRun() {
  const { rows } = await db.current.pool.query(
    `SELECT id::int, status, options, source_keys, rows_examined::int, rows_failed::int, rows_changed::int, finished_at
       FROM pgrekey.runs WHERE kind = 'verify' ORDER BY id DESC LIMIT 1`,
  );
  return rows[0];
}

/** Every stored value of people, to prove a command changed no ciphertext. */
async function storedValues(): Promise<string> {
  const { rows } = await db.current.pool.query<{ sum: string }>(
    `SELECT md5(string_agg(coalesce(email, '∅') || '|' || coalesce(mobno, '∅'), ',' ORDER BY id)) AS sum FROM people`,
  );
  return rows[0]!.sum;
}

describe('verify', () => {
  beforeAll(async () => {
    ws = await prepareRotation(db.current.pool, db.current.url, ROWS);
  });
  afterAll(() => ws?.cleanup());

  it('exits 0 on a clean table, counts values per decrypting key, NULLs and unknown hints, and records a verify run', async () => {
    const { result, report } = await verifyJson();
    expectExit(result, 0);
    expect(report.status).toBe('succeeded');
    expect(report.examined).toBe(ROWS);
    const email = column(report, 'email');
    expect(email).toMatchObject({ rows: ROWS, nulls: 0, empty: 0, byKey: { old: ROWS }, plaintext: 0, legacy: 0, failed: {} });
    // The target migration left every hint NULL: reported, not a failure.
    expect(email.versions).toMatchObject({ agree: 0, mismatched: 0, unknown: ROWS });
    expect(column(report, 'mobno')).toMatchObject({ nulls: NULL_MOBNOS, byKey: { old: ROWS - NULL_MOBNOS } });
    const run = await lastVerifyRun();
    expect(run).toMatchObject({ id: report.runId, status: 'succeeded', rows_examined: ROWS, rows_failed: 0 });
    expect(run.options).toMatchObject({ without: [], sampled: false, partial: false });
    expect(run.finished_at).not.toBeNull();
  });

  it('reads in many small read-only chunks (keyset), each row exactly once', async () => {
    // 64 does not divide 700, and 7 * 100 = 700 ends a chunk exactly at the last row.
    for (const chunk of ['64', '100']) {
      const { result, report } = await verifyJson('--chunk-rows', chunk);
      expectExit(result, 0);
      expect(report.examined).toBe(ROWS);
      expect(column(report, 'email').byKey).toEqual({ old: ROWS });
      expect(column(report, 'mobno').nulls).toBe(NULL_MOBNOS);
    }
  });

  it('--without old fails before rotation, naming rows that only the withheld key reads', async () => {
    const { result, report } = await verifyJson('--without', 'old');
    expectExit(result, 1);
    const email = column(report, 'email');
    expect(email.failed).toEqual({ 'needs-withheld-key': ROWS });
    expect(email.needsWithheld).toEqual({ old: ROWS });
    expect(report.findings[0]).toMatchObject({ column: 'email', rowKey: { id: '1' }, reason: 'needs-withheld-key', withheldKey: 'old' });
    const run = await lastVerifyRun();
    expect(run.status).toBe('failed');
    expect(run.options).toMatchObject({ without: ['old'], sampled: false });
    expect(run.source_keys).toEqual(['new']);
    const failures = await db.current.pool.query('SELECT count(*)::int AS n FROM pgrekey.failures WHERE run_id = $1', [run.id]);
    expect(failures.rows[0].n).toBeGreaterThan(0);
  });

  it('--fix-versions sets unknown hints to the decrypting key without changing any ciphertext', async () => {
    const before = await storedValues();
    const { result, report } = await verifyJson('--fix-versions');
    expectExit(result, 0);
    expect(column(report, 'email').versions).toMatchObject({ unknown: ROWS, fixed: ROWS, fixLost: 0 });
    expect(await storedValues()).toBe(before);
    const hints = await db.current.pool.query(
      `SELECT count(*)::int AS n FROM people p JOIN pgrekey.keys k ON k.version = p.email_key_version WHERE k.key_id = 'old'`,
    );
    expect(hints.rows[0].n).toBe(ROWS);
    const again = await verifyJson();
    expect(column(again.report, 'email').versions).toMatchObject({ agree: ROWS, unknown: 0, mismatched: 0 });
    expect(column(again.report, 'mobno').versions).toMatchObject({ agree: ROWS - NULL_MOBNOS, unknown: 0 });
  });

  it('--without old passes after rotate, and the run is recorded as a full rehearsal', async () => {
    expectExit(await ws.run(['rotate', '--json']), 0);
    const { result, report } = await verifyJson('--without', 'old');
    expectExit(result, 0);
    expect(column(report, 'email').byKey).toEqual({ new: ROWS });
    const run = await lastVerifyRun();
    expect(run).toMatchObject({ status: 'succeeded', rows_failed: 0 });
    expect(run.options).toMatchObject({ without: ['old'], sampled: false, partial: false });
    // The retire gate's query: a successful full rehearsal for key "old".
    const gate = await db.current.pool.query(
      `SELECT count(*)::int AS n FROM pgrekey.runs
        WHERE kind = 'verify' AND status = 'succeeded' AND options @> '{"without": ["old"], "sampled": false, "partial": false}'`,
    );
    expect(gate.rows[0].n).toBe(1);
  });

  describe('with bad rows', () => {
    const plaintext = 'alice.secret@example.org';
    const legacy = `ENC_V1:${deflateSync(Buffer.from('+15559876543', 'utf8')).toString('base64')
      .replaceAll('+', '-')
      .replaceAll('/', '_')}`;
    let corrupted = '';
    let foreign = '';

    beforeAll(async () => {
      const pool = db.current.pool;
      const original = (await pool.query('SELECT email FROM people WHERE id = 2')).rows[0].email as string;
      corrupted = original.slice(0, original.length - 12); // truncated, as by a too-short varchar
      const other = await createCodec({
        format: 'django-fernet-v1',
        keys: [{ id: 'elsewhere', secret: 'env:S' }],
        env: { S: 'django-insecure-an0ther-app-key-not-configured-here!' },
      });
      foreign = other.encrypt(plaintextsOf(3).email);
      await pool.query('UPDATE people SET email = $1 WHERE id = 2', [corrupted]);
      await pool.query('UPDATE people SET email = $1 WHERE id = 3', [foreign]);
      await pool.query('UPDATE people SET email = $1 WHERE id = 4', [plaintext]);
      await pool.query('UPDATE people SET mobno = $1 WHERE id = 5', [legacy]);
      // A wrong hint (as if written by a buggy pg-rekey: anyone else's is reset): it names "old" for a value under "new".
      await asKeyVersionWriter(pool, `UPDATE people SET email_key_version = (SELECT version FROM pgrekey.keys WHERE key_id = 'old') WHERE id = 6`);
    });

    it('exits 1 and names each bad row by key and reason, never by value', async () => {
      const { result, report } = await verifyJson();
      expectExit(result, 1);
      const findings = report.findings as Finding[];
      const brief = findings.map((f) => ({ column: f.column, id: f.rowKey.id, reason: f.reason }));
      expect(brief).toEqual([
        { column: 'email', id: '2', reason: 'malformed' },
        { column: 'email', id: '3', reason: 'no-key' },
        { column: 'email', id: '4', reason: 'plaintext' },
        { column: 'mobno', id: '5', reason: 'legacy' },
        { column: 'email', id: '6', reason: 'version-mismatch' },
      ]);
      expect(findings[4]).toMatchObject({ hintKey: 'old', decryptedBy: 'new' });
      expect(column(report, 'email')).toMatchObject({ plaintext: 1, failed: { malformed: 1, 'no-key': 1 } });
      expect(column(report, 'email').versions.mismatched).toBe(1);
      expect(column(report, 'mobno').legacy).toBe(1);
      expect(report.problems).toBe(5);

      const human = await ws.run(['verify']);
      expectExit(human, 1);
      expect(human.stdout).toContain('public.people.email at {"id":"2"}: malformed');
      expect(human.stdout).toContain('public.people.email at {"id":"3"}: no-key');
      expect(human.stdout).toContain('public.people.email at {"id":"4"}: plaintext');
      expect(human.stdout).toContain('public.people.mobno at {"id":"5"}: legacy');
      expect(human.stdout).toContain('public.people.email at {"id":"6"}: version-mismatch: hint names key old, value is under key new');

      const run = await lastVerifyRun();
      expect(run).toMatchObject({ status: 'failed', rows_failed: 5 });
      const stored = await db.current.pool.query('SELECT row_key, reason FROM pgrekey.failures WHERE run_id = $1 ORDER BY id', [run.id]);
      expect(stored.rows.map((r) => r.reason)).toEqual(['malformed', 'no-key', 'plaintext', 'legacy', 'version-mismatch']);

      const secrets = [plaintext, legacy, corrupted, foreign, '+15559876543', plaintextsOf(3).email, corrupted.slice(10, 40)];
      const everything = [result.stdout, result.stderr, human.stdout, human.stderr, JSON.stringify(stored.rows), JSON.stringify(run)].join('\n');
      for (const s of secrets) expect(everything).not.toContain(s);
    });

    it('--fix-versions repairs the wrong hint only; the other problems remain and ciphertexts are unchanged', async () => {
      const before = await storedValues();
      const { result, report } = await verifyJson('--fix-versions');
      expectExit(result, 1);
      expect(column(report, 'email').versions).toMatchObject({ mismatched: 1, mismatchFixed: 1, fixed: 1 });
      expect((report.findings as Finding[]).find((f) => f.reason === 'version-mismatch')).toMatchObject({ rowKey: { id: '6' }, fixed: true });
      expect(report.problems).toBe(4);
      expect(await storedValues()).toBe(before);
      const hint = await db.current.pool.query(
        'SELECT k.key_id FROM people p JOIN pgrekey.keys k ON k.version = p.email_key_version WHERE p.id = 6',
      );
      expect(hint.rows[0].key_id).toBe('new');
      const again = await verifyJson();
      expect(column(again.report, 'email').versions.mismatched).toBe(0);
    });

    it('--target limits the scan and marks the run partial', async () => {
      const { result, report } = await verifyJson('--target', 'people.mobno');
      expectExit(result, 1);
      expect(report.columns.map((c: { column: string }) => c.column)).toEqual(['mobno']);
      expect((await lastVerifyRun()).options).toMatchObject({ partial: true });
    });

    afterAll(async () => {
      // Restore the bad rows so later tests see a clean table again.
      const codec = await bothKeysCodec();
      for (const id of [2, 3, 4]) await db.current.pool.query('UPDATE people SET email = $1 WHERE id = $2', [codec.encrypt(plaintextsOf(id).email), id]);
      await db.current.pool.query('UPDATE people SET mobno = $1 WHERE id = 5', [codec.encrypt(plaintextsOf(5).mobno!)]);
    });
  });

  it('--sample N checks about N rows in random keyset windows and says which', async () => {
    const { result, report } = await verifyJson('--sample', '150', '--seed', '7');
    expectExit(result, 0);
    const sample = report.samples['public.people'];
    expect(sample.method).toBe('keyset-windows');
    expect(sample.rowsChecked).toBeGreaterThan(0);
    expect(sample.rowsChecked).toBeLessThanOrEqual(150);
    expect(report.examined).toBe(sample.rowsChecked);
    expect(sample.windows.length).toBeGreaterThan(0);
    expect(sample.windowCount).toBe(sample.windows.length);
    expect(sample.windows.reduce((n: number, w: { rows: number }) => n + w.rows, 0)).toBe(sample.rowsChecked);
    expect((await lastVerifyRun()).options).toMatchObject({ sampled: true, sample: { rows: 150 }, seed: 7 });
  });

  it('--sample N never checks more than N rows', async () => {
    const checked: number[] = [];
    for (const seed of ['1', '2', '3', '4', '5']) {
      const { result, report } = await verifyJson('--sample', '10', '--seed', seed);
      expectExit(result, 0);
      const sample = report.samples['public.people'];
      expect(sample).toMatchObject({ method: 'keyset-windows', requestedRows: 10 });
      expect(report.examined).toBe(sample.rowsChecked);
      checked.push(sample.rowsChecked);
    }
    expect(Math.max(...checked)).toBeLessThanOrEqual(10);
    expect(Math.max(...checked)).toBeGreaterThan(0);
  });

  it('--sample N checks N rows even when windows run into the table\'s end: the rest comes from the gaps between them', async () => {
    for (const seed of ['1', '2', '3']) {
      // 650 of 700 rows in windows of 100 after random starts: the windows reach the last row long before 650.
      const { result, report } = await verifyJson('--sample', '650', '--seed', seed);
      expectExit(result, 0);
      const sample = report.samples['public.people'];
      expect(sample).toMatchObject({ method: 'keyset-windows', requestedRows: 650, rowsChecked: 650 });
      expect(report.examined).toBe(650);
      const windows = sample.windows as { after: string[] | null; last: string[]; rows: number }[];
      const firstStart = Number(windows[0]!.after![0]);
      const wrapped = windows.filter((w) => w.after === null || Number(w.after[0]) < firstStart);
      // Rows before the first window's start stop at it (that window read after it): no row twice.
      for (const w of wrapped) expect(Number(w.last[0])).toBeLessThanOrEqual(firstStart);
    }
  });

  it('the same --seed checks the same windows again', async () => {
    const windowsOf = async (seed: string) =>
      (await verifyJson('--sample', '150', '--seed', seed)).report.samples['public.people'].windows.map((w: { after: string[] | null }) => w.after);
    const first = await windowsOf('11');
    expect(await windowsOf('11')).toEqual(first);
    expect(await windowsOf('12')).not.toEqual(first);
  });

  it('--sample-percent 100 reads the whole table; a sampled run is never a full rehearsal', async () => {
    const { result, report } = await verifyJson('--sample-percent', '100', '--without', 'old');
    expectExit(result, 0);
    expect(report.samples['public.people']).toMatchObject({ method: 'full-scan', rowsChecked: ROWS });
    expect((await lastVerifyRun()).options).toMatchObject({ sampled: true, without: ['old'] });
  });

  it('refuses an unknown --without key with exit 2', async () => {
    const result = await ws.run(['verify', '--without', 'nosuchkey']);
    expectExit(result, 2);
    expect(result.stderr).toMatch(/nosuchkey/);
  });
});
