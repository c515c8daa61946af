/**
 * Runs the built CLI (dist/src/cli/bin.js) as a subprocess, the way a DBA or
 * a deploy hook runs it, so tests see real exit codes and real stdout/stderr.
 * `npm test` builds before vitest runs, so dist/ is current.
 */

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** Repository root, from this file's location (test/helpers/). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The built CLI entry point. */
export const CLI_PATH = fileURLToPath(new URL('../../dist/src/cli/bin.js', import.meta.url));

/** Options of `runCli`. */
export interface RunCliOptions {
  /** Extra environment; added to a minimal base (PATH, HOME, TMPDIR, NO_COLOR=1) unless inheritEnv. */
  env?: Record<string, string | undefined>;
  /** Inherit the test process's whole environment (default false, so runs are reproducible). */
  inheritEnv?: boolean;
  /** Working directory. Default: the repository root. */
  cwd?: string;
  /** Written to stdin, which is then closed. Without it stdin is closed at once. */
  input?: string;
  /** Kill the CLI (SIGKILL) after this long. Default 30 s. */
  timeoutMs?: number;
}

/** What the CLI did. */
export interface CliResult {
  /** Exit code; null when killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** True when runCli killed it at timeoutMs. */
  timedOut: boolean;
}

/**
 * Spawns `node dist/src/cli/bin.js ...args` and resolves when it exits (never
 * rejects on a non-zero exit: the code is what tests assert). The base
 * environment is minimal because vitest workers carry NODE_OPTIONS and
 * VITEST_* variables that the CLI must not see.
 */
export function runCli(args: readonly string[], options: RunCliOptions = {}): Promise<CliResult> {
  const base: Record<string, string | undefined> = options.inheritEnv
    ? { ...process.env }
    : { PATH: process.env.PATH, HOME: process.env.HOME, TMPDIR: process.env.TMPDIR, LANG: 'C.UTF-8' };
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries({ ...base, NO_COLOR: '1', ...options.env })) {
    if (value !== undefined) env[key] = value;
  }
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_PATH, ...args], {
      cwd: options.cwd ?? REPO_ROOT,
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs ?? 30_000);
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    // EPIPE when the CLI exits without reading stdin is not a test failure.
    child.stdin.on('error', () => {});
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code,
        signal,
        stdout: Buffer.concat(stdout).toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8'),
        timedOut,
      });
    });
    child.stdin.end(options.input ?? '');
  });
}
