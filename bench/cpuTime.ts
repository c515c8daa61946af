/**
 * CPU time from /proc (Linux), so the report can say where a rotation's CPU
 * went: pg-rekey's own process (all its threads) and the PostgreSQL server
 * beside it. With both, it can state the ceiling this machine puts on the
 * rotation: no schedule can beat cores × rows / (CPU seconds spent).
 * Elsewhere (no /proc) every figure is null and the report says "n/a".
 */
import { readdirSync, readFileSync } from 'node:fs';

// USER_HZ, the unit of /proc's CPU times: 100 on every Linux architecture Node runs on.
const TICKS_PER_SECOND = 100;

/** The fields of /proc/<pid>/stat after the command name (which may contain spaces). */
function statFields(pid: string | number): { command: string; fields: string[] } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = stat.lastIndexOf(')');
    return { command: stat.slice(stat.indexOf('(') + 1, close), fields: stat.slice(close + 2).split(' ') };
  } catch {
    return null; // exited, or no /proc
  }
}

// Field positions after the command: utime 11, stime 12, cutime 13, cstime 14 (proc(5), counted from state = 0).
const seconds = (fields: string[], from: number, to: number) =>
  fields.slice(from, to + 1).reduce((sum, f) => sum + Number(f), 0) / TICKS_PER_SECOND;

/** User + system CPU seconds of a running process, all threads; null once it is gone. */
export function processCpuSeconds(pid: number): number | null {
  const stat = statFields(pid);
  return stat ? seconds(stat.fields, 11, 12) : null;
}

/**
 * CPU seconds of every `postgres` process on this machine, including the
 * backends that already exited (their time is in the postmaster's cutime and
 * cstime once it reaped them). Differences between two calls are the server's
 * CPU over that interval. Null without /proc.
 */
export function postgresCpuSeconds(): number | null {
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  } catch {
    return null;
  }
  let total = 0;
  for (const pid of pids) {
    const stat = statFields(pid);
    if (stat?.command === 'postgres') total += seconds(stat.fields, 11, 14);
  }
  return total;
}
