/**
 * Measurement (f): `pg-rekey verify` as the real CLI subprocess, on a table
 * that `pg-rekey rotate` has just rotated (the procedure's order: rotate, then
 * verify). Records its wall clock, its own duration and its peak RSS (VmHWM).
 */
import { runCli } from './runCli.js';
import type { RotateTiming } from './rotateRun.js';

/** What a measured verify run did. */
export interface VerifyTiming {
  rows: number;
  /** Wall clock of the whole CLI process: start-up, key derivation, scan, recording the run, summary. */
  wallMs: number;
  peakRssKiB: number | null;
  status: string;
  /** Rows read over all targets (one target here: both columns of each row are read together). */
  examined: number;
  /** The CLI's own figure: the scan without process start-up. */
  verifyMs: number;
}

/** Verifies `people` at `url` with `pg-rekey verify --json …extraArgs`; throws unless it exits 0 having read every row. */
export async function measureVerify(
  url: string,
  workspace: { dir: string; env: Record<string, string> },
  rows: number,
  extraArgs: readonly string[],
): Promise<VerifyTiming> {
  const run = await runCli(['verify', '--json', ...extraArgs], workspace.dir, { ...workspace.env, DATABASE_URL: url });
  if (run.code !== 0) throw new Error(`pg-rekey verify exited ${run.code}\n${run.stdout.slice(0, 4000)}\n${run.stderr.slice(-4000)}`);
  const outcome = JSON.parse(run.stdout) as { status: string; examined: number; durationMs: number; sampled: boolean };
  if (outcome.status !== 'succeeded' || (!outcome.sampled && outcome.examined !== rows)) {
    throw new Error(`verify read ${outcome.examined} of ${rows} rows, status ${outcome.status}`);
  }
  return { rows, wallMs: run.wallMs, peakRssKiB: run.peakRssKiB, status: outcome.status, examined: outcome.examined, verifyMs: outcome.durationMs };
}

/** One table size: the rotate that prepared it and the verify measured on it. */
export interface VerifyAtSize {
  /** What the table is: the main run's N / 5N table, or one of the --verify-rows sizes. */
  label: string;
  /** True for the --verify-rows sizes (the memory comparison of issue 5). */
  sized: boolean;
  rows: number;
  rotate: RotateTiming;
  verify: VerifyTiming;
}
