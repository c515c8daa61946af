/**
 * Runs the built CLI as a subprocess (so the memory measured is the CLI's own)
 * and samples its resident set from /proc while it runs. VmHWM is the kernel's
 * high-water mark of the resident set, so sampling it catches peaks between
 * polls; the last sample before exit is the process's peak. Its CPU time is
 * sampled the same way (the last ~25 ms before exit are missed).
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { processCpuSeconds } from './cpuTime.js';

/** The built CLI entry point (this file is compiled to dist/bench/). */
export const CLI_PATH = fileURLToPath(new URL('../src/cli/bin.js', import.meta.url));

/** What a CLI run did. */
export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  wallMs: number;
  /** Peak resident set in KiB (VmHWM), or null where /proc is not available. */
  peakRssKiB: number | null;
  /** User + system CPU seconds of the process (all threads) at its last sample, or null without /proc. */
  cpuSeconds: number | null;
}

function readHwm(pid: number): number | null {
  try {
    const match = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : null;
  } catch {
    return null; // exited between polls, or no /proc
  }
}

/** Runs `node dist/src/cli/bin.js …args` in `cwd` with `env` (plus PATH/HOME), polling its peak RSS. */
export function runCli(args: readonly string[], cwd: string, env: Record<string, string>, extraNodeArgs: string[] = []): Promise<CliRun> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...extraNodeArgs, CLI_PATH, ...args], {
      cwd,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', NO_COLOR: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => {
      // Progress lines arrive once per batch; keep the tail only, so the bench's own memory stays flat.
      err.push(c);
      if (err.length > 200) err.shift();
    });
    let peak: number | null = null;
    let cpu: number | null = null;
    const poll = setInterval(() => {
      if (child.pid === undefined) return;
      const hwm = readHwm(child.pid);
      if (hwm !== null) peak = Math.max(peak ?? 0, hwm);
      cpu = processCpuSeconds(child.pid) ?? cpu;
    }, 25);
    child.on('error', (e) => {
      clearInterval(poll);
      reject(e);
    });
    child.on('exit', (code) => {
      clearInterval(poll);
      resolve({
        code,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        wallMs: performance.now() - started,
        peakRssKiB: peak,
        cpuSeconds: cpu,
      });
    });
  });
}

/** Runs the CLI and throws with its output unless it exits with `expected`. */
export async function runCliOk(args: readonly string[], cwd: string, env: Record<string, string>, expected = 0): Promise<CliRun> {
  const run = await runCli(args, cwd, env);
  if (run.code !== expected) {
    throw new Error(`pg-rekey ${args.join(' ')} exited ${run.code}\n${run.stdout}\n${run.stderr.slice(-4000)}`);
  }
  return run;
}
