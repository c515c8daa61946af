/**
 * `verify` as a library call: scan every target (or a sample), classify and
 * count every value, optionally repair key-version hints, and record the
 * outcome as one `verify` run (with its findings in the failures table).
 * Silent and process-free: the CLI prints and picks the exit code.
 *
 * Pass/fail rule: the run succeeds when every non-NULL, non-empty value
 * decrypts with the allowed keys and every mismatched key-version hint is (or
 * was just) right. Plaintext and legacy `ENC_V1:` values fail it (they are not
 * protected by any key); NULL hints on readable values are reported but do not
 * fail it (the reset trigger sets them on every application write).
 */
import type pg from 'pg';
import type { Codec } from '../crypto/codec.js';
import { withTransaction } from '../db/withTransaction.js';
import { insertFailuresSql } from '../rotation/rangesSql.js';
import { asTargetChanged } from '../rotation/targetChanged.js';
import type { RegisteredKey } from '../schema/registry.js';
import type { ResolvedTarget } from '../schema/resolveTarget.js';
import type { Actor } from '../schema/runsSql.js';
import { readAllRows, readSampleRows, type SampleReport, type SampleSpec } from './readTarget.js';
import { TargetVerifier, type ColumnReport, type FindingSink, type VerifyFinding } from './verifyTarget.js';
import { insertVerifyRunSql } from './verifySql.js';

/** What {@link runVerify} needs. */
export interface VerifyInput {
  pool: pg.Pool;
  schema: string;
  actor: Actor;
  targets: readonly ResolvedTarget[];
  /** The codec of each target (by ResolvedTarget.name), keys primary-first. */
  codecs: ReadonlyMap<string, Codec>;
  registry: readonly RegisteredKey[];
  /** Key ids withheld (the retirement rehearsal). */
  without: readonly string[];
  /** Key ids allowed to decrypt, recorded as the run's source keys. */
  sourceKeys: readonly string[];
  /** Sample instead of reading everything. */
  sample?: SampleSpec | null;
  /** Seed of the sample (REPEATABLE); random when absent. */
  seed?: number;
  /** Repair mismatched and unknown key-version hints (compare-and-swap). */
  fixVersions?: boolean;
  /** True when only some configured targets are verified (such a run is no retire proof). */
  partial?: boolean;
  /** Rows per read-only chunk of a full scan (default 10,000). */
  chunkRows?: number;
  /**
   * Value bytes a page of rows may carry (default DEFAULT_PAGE_MAX_BYTES, ~32 MiB;
   * see readTarget.ts): pages of large values hold fewer rows, a single larger row is still read.
   */
  pageMaxBytes?: number | undefined;
  /** Findings kept (printed, stored in failures); the rest are counted. Default 1000. */
  maxFindings?: number;
  /** Called after each page with the target name and rows read so far in it. */
  onProgress?: (target: string, rows: number) => void;
  /**
   * A stop request (SIGTERM, SIGINT): checked before each page, so the scan
   * ends between pages and the run is recorded as failed with the repairs
   * committed so far; runVerify then rejects with the signal's reason.
   */
  signal?: AbortSignal;
}

/** The outcome of a verify run. */
export interface VerifyOutcome {
  runId: number;
  status: 'succeeded' | 'failed';
  sampled: boolean;
  without: string[];
  /** Rows read, over all targets. */
  examined: number;
  /** Problem values: failures + plaintext + legacy + unrepaired mismatched hints. */
  problems: number;
  columns: ColumnReport[];
  findings: VerifyFinding[];
  findingsDropped: number;
  /** Per target, how the sample was drawn and which rows it covered. */
  samples: Record<string, SampleReport>;
  durationMs: number;
  rowsPerSecond: number;
}

/** Runs a verify and records it; throws on database errors or a stop (after recording a failed run when possible). */
export async function runVerify(input: VerifyInput): Promise<VerifyOutcome> {
  const started = Date.now();
  const findings: FindingSink = { max: input.maxFindings ?? 1000, list: [], dropped: 0 };
  const versionOf = new Map(input.registry.map((k) => [k.keyId, k.version]));
  const keyOf = new Map(input.registry.map((k) => [k.version, k.keyId]));
  const seed = input.seed ?? Math.floor(Math.random() * 2 ** 31);
  const sampled = Boolean(input.sample);
  const columns: ColumnReport[] = [];
  const samples: Record<string, SampleReport> = {};
  let examined = 0;
  let problems = 0;
  const runOptions = {
    without: [...input.without],
    sampled,
    partial: input.partial ?? false,
    fixVersions: input.fixVersions ?? false,
    ...(input.sample ? { sample: input.sample, seed } : {}),
  };
  const targetNames = input.targets.flatMap((t) => t.columns.map((c) => `${t.name}.${c.name}`));
  // A dedicated connection for the reads, so repairs on the pool never queue behind them.
  const reader = await input.pool.connect();
  // The retire gate compares this with when rotations and promotions finished,
  // so it is the server's clock, read before the first row (not reconstructed later).
  const startedAt = (await reader.query<{ now: string }>('SELECT clock_timestamp()::text AS now')).rows[0]!.now;
  // The target being read when a failure ends the scan: its repairs so far are committed.
  let current: TargetVerifier | undefined;
  // The target being read or repaired, to name when another session dropped or altered it.
  let reading: ResolvedTarget | undefined;
  try {
    for (const target of input.targets) {
      reading = target;
      const codec = input.codecs.get(target.name);
      if (!codec) throw new Error(`no codec for ${target.name}`);
      const verifier = (current = new TargetVerifier(target, {
        codec,
        without: input.without,
        versionOf,
        keyOf,
        findings,
        fixPool: input.fixVersions ? input.pool : null,
      }));
      let read = 0;
      const onRows = async (rows: Parameters<TargetVerifier['onRows']>[0]) => {
        input.signal?.throwIfAborted();
        await verifier.onRows(rows);
        read += rows.length;
        input.onProgress?.(target.name, read);
      };
      // A sample that covers the whole table is a full scan: it keeps --chunk-rows too,
      // or it read the table in chunks of the default size whatever the flag said.
      const sizes = input.chunkRows ? { chunkRows: input.chunkRows, pageMaxBytes: input.pageMaxBytes } : { pageMaxBytes: input.pageMaxBytes };
      if (input.sample) samples[target.name] = await readSampleRows(reader, target, input.sample, seed, onRows, sizes);
      else await readAllRows(reader, target, onRows, sizes);
      await verifier.finish();
      examined += read;
      problems += verifier.problems;
      columns.push(...verifier.reports);
      current = undefined;
      reading = undefined;
    }
  } catch (err) {
    reader.release();
    // Key-version repairs committed before the failure are a change the retire
    // gate must see (it counts a verify --fix-versions with rows changed).
    const reports = [...columns, ...(current?.reports ?? [])];
    await recordRun(input, {
      status: 'failed',
      startedAt,
      options: runOptions,
      targets: targetNames,
      examined,
      fixed: reports.reduce((n, c) => n + c.versions.fixed, 0),
      summary: { error: stoppedBy(input, err) ? 'STOPPED' : ((err as { code?: string }).code ?? 'INTERNAL'), columns: columnsSummary(columns) },
      findings: [],
    }).catch(() => undefined);
    throw reading ? asTargetChanged(err, reading, 'verify') : err;
  }
  reader.release();
  const durationMs = Date.now() - started;
  const status = problems === 0 ? 'succeeded' : 'failed';
  const runId = await recordRun(input, {
    status,
    startedAt,
    options: runOptions,
    targets: targetNames,
    examined,
    problems,
    summary: {
      columns: columnsSummary(columns),
      findingsDropped: findings.dropped,
      ...(sampled ? { samples: Object.fromEntries(Object.entries(samples).map(([t, s]) => [t, { ...s, windows: undefined }])) } : {}),
    },
    findings: findings.list,
    fixed: columns.reduce((n, c) => n + c.versions.fixed, 0),
    skipped: columns.reduce((n, c) => n + c.nulls + c.empty, 0),
  });
  return {
    runId,
    status,
    sampled,
    without: [...input.without],
    examined,
    problems,
    columns,
    findings: findings.list,
    findingsDropped: findings.dropped,
    samples,
    durationMs,
    rowsPerSecond: Math.round(examined / Math.max(durationMs / 1000, 0.001)),
  };
}

/** Whether `err` is how input.signal ended the scan, rather than a failure of its own. */
function stoppedBy(input: VerifyInput, err: unknown): boolean {
  return input.signal?.aborted === true && err === input.signal.reason;
}

/** The per-column counters as stored in the run's summary (never values). */
function columnsSummary(columns: readonly ColumnReport[]): Record<string, unknown> {
  return Object.fromEntries(columns.map(({ target, column, ...counts }) => [`${target}.${column}`, counts]));
}

/** Inserts the run and its findings in one transaction; returns the run id. */
async function recordRun(
  input: VerifyInput,
  run: {
    status: 'succeeded' | 'failed';
    /** The server's clock when the scan began. */
    startedAt: string;
    options: Record<string, unknown>;
    targets: string[];
    examined: number;
    problems?: number;
    fixed?: number;
    skipped?: number;
    summary: Record<string, unknown>;
    findings: readonly VerifyFinding[];
  },
): Promise<number> {
  return withTransaction(input.pool, async (client) => {
    const { rows } = await client.query<{ id: number }>(
      insertVerifyRunSql(input.schema, {
        status: run.status,
        startedAt: run.startedAt,
        actor: input.actor,
        sourceKeys: [...input.sourceKeys],
        targets: run.targets,
        options: run.options,
        examined: run.examined,
        fixed: run.fixed ?? 0,
        skipped: run.skipped ?? 0,
        failed: run.problems ?? 0,
        summary: run.summary,
      }),
    );
    const runId = rows[0]!.id;
    const byTarget = new Map<string, VerifyFinding[]>();
    for (const f of run.findings) {
      // A repaired hint is not a failure of this run.
      if (f.fixed) continue;
      let list = byTarget.get(f.target);
      if (!list) byTarget.set(f.target, (list = []));
      list.push(f);
    }
    for (const [target, list] of byTarget) {
      await client.query(insertFailuresSql(input.schema, runId, target, list.map((f) => ({ column: f.column, rowKey: f.rowKey, reason: f.reason }))));
    }
    return runId;
  });
}
