/**
 * Measurement (d)/(e), and the rotation before each verify (f): `pg-rekey rotate` with its defaults, run as the real CLI
 * on a fresh copy of a database prepared the way a DBA prepares it (migrate up,
 * target add, migrate up), then checked: every value decrypts with the new key.
 */
import { postgresCpuSeconds } from './cpuTime.js';
import { runCli, runCliOk } from './runCli.js';
import { createDatabase, dropDatabase, dualKeyCodec, withDb, createWorkspace, type Workspace } from './workload.js';

/** A migrated template database with `people` as a target, and the workspace holding its config. */
export interface ReadyTemplate {
  name: string;
  workspace: Workspace;
  cleanup(): Promise<void>;
}

/** Copies `seed` into `name` and prepares it for rotation through the CLI. */
export async function prepareTemplate(adminUrl: string, seed: string, name: string): Promise<ReadyTemplate> {
  const url = await createDatabase(adminUrl, name, seed);
  const ws = await createWorkspace(url);
  try {
    await runCliOk(['migrate', 'up'], ws.dir, ws.env);
    await runCliOk(['target', 'add', '--table', 'public.people', '--columns', 'email,mobno', '--format', 'django-fernet-v1'], ws.dir, ws.env);
    await runCliOk(['migrate', 'up'], ws.dir, ws.env);
  } catch (err) {
    await ws.cleanup();
    throw err;
  }
  return { name, workspace: ws, cleanup: () => ws.cleanup() };
}

/** What a measured rotate run did. */
export interface RotateTiming {
  rows: number;
  /** Wall clock of the whole CLI process: start-up, key derivation, planning, rotation, summary. */
  wallMs: number;
  peakRssKiB: number | null;
  /** The CLI's own summary: its rotation time (without process start-up) and counts. */
  status: string;
  examined: number;
  changedHere: number;
  rotationMs: number;
  /** CPU seconds of the CLI process (all its threads), and of the PostgreSQL server meanwhile (embedded server only); null where not measurable. */
  cpu: { pgRekey: number | null; postgres: number | null };
  /** When this is the median of several runs: each run's whole-process rows/s, in run order. */
  runsRowsPerSecond?: number[];
}

/**
 * Rotates a fresh copy of `ready` with `pg-rekey rotate --json …extraArgs`, then
 * checks every row; `after` (e.g. a verify measurement) runs on the rotated copy
 * before it is dropped.
 */
/** How a measured rotate runs, besides the table. */
export interface RotateRunOptions {
  /** Passed to every `pg-rekey rotate` after `--json`. */
  extraArgs: readonly string[];
  /** Write a CPU profile of the CLI here. */
  profileDir?: string | undefined;
  /** The server runs on this machine (embedded): measure its CPU too. */
  serverIsLocal: boolean;
  /** SQL run on the fresh copy before the rotate (a what-if variant of the schema). */
  prepareSql?: string | undefined;
  /** Runs on the rotated copy before it is dropped (e.g. a verify measurement). */
  after?: ((url: string) => Promise<void>) | undefined;
}

export async function measureRotate(adminUrl: string, ready: ReadyTemplate, name: string, rows: number, options: RotateRunOptions): Promise<RotateTiming> {
  const { extraArgs, profileDir, serverIsLocal, prepareSql, after } = options;
  const url = await createDatabase(adminUrl, name, ready.name);
  try {
    if (prepareSql) await withDb(url, (pool) => pool.query(prepareSql));
    const env = { ...ready.workspace.env, DATABASE_URL: url };
    const nodeArgs = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
    const serverCpuBefore = serverIsLocal ? postgresCpuSeconds() : null;
    const run = await runCli(['rotate', '--json', ...extraArgs], ready.workspace.dir, env, nodeArgs);
    let serverCpuAfter: number | null = null;
    if (serverIsLocal) {
      // Let the postmaster reap the CLI's backends, whose CPU then shows in its cutime.
      await new Promise((resolve) => setTimeout(resolve, 200));
      serverCpuAfter = postgresCpuSeconds();
    }
    if (run.code !== 0) throw new Error(`pg-rekey rotate exited ${run.code}\n${run.stdout}\n${run.stderr.slice(-4000)}`);
    const outcome = JSON.parse(run.stdout) as { status: string; examined: number; changedHere: number; durationMs: number };
    await assertAllUnderNewKey(url, rows);
    if (after) await after(url);
    return {
      rows,
      wallMs: run.wallMs,
      peakRssKiB: run.peakRssKiB,
      status: outcome.status,
      examined: outcome.examined,
      changedHere: outcome.changedHere,
      rotationMs: outcome.durationMs,
      cpu: {
        pgRekey: run.cpuSeconds,
        postgres: serverCpuBefore === null || serverCpuAfter === null ? null : serverCpuAfter - serverCpuBefore,
      },
    };
  } finally {
    await dropDatabase(adminUrl, name);
  }
}

/** Throws unless every row is on the new key's version and a sample decrypts with the new key to its plaintext. */
async function assertAllUnderNewKey(url: string, rows: number): Promise<void> {
  const codec = await dualKeyCodec();
  await withDb(url, async (pool) => {
    const { rows: [counts] } = await pool.query<{ total: number; left: number }>(
      `SELECT count(*)::int AS total,
              count(*) FILTER (WHERE email_key_version IS DISTINCT FROM k.version
                               OR (mobno IS NOT NULL AND mobno_key_version IS DISTINCT FROM k.version))::int AS left
         FROM people, (SELECT version FROM pgrekey.keys WHERE key_id = 'new') AS k`,
    );
    if (counts?.total !== rows || counts.left !== 0) throw new Error(`rotation incomplete: ${JSON.stringify(counts)}`);
    const sample = await pool.query<{ id: string; email: string }>('SELECT id, email FROM people TABLESAMPLE BERNOULLI (1) LIMIT 500');
    for (const r of sample.rows) {
      const d = codec.decrypt(r.email);
      if (d.keyId !== 'new' || !/^user\d+@example\.com$/.test(d.plaintext)) throw new Error(`row ${r.id} did not rotate correctly`);
    }
  });
}
