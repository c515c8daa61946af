/**
 * The benchmark's report: the JSON shape written to bench/results/ and the
 * table printed for humans, with the ratios the targets of issue 4 are about.
 */
import type { Timing } from './baselines.js';
import type { RotateTiming } from './rotateRun.js';
import type { VerifyAtSize } from './verifyRun.js';

/** Everything one benchmark run measured. */
export interface BenchReport {
  date: string;
  rows: number;
  machine: { cpus: number; cpuModel: string; memoryMiB: number; node: string };
  server: string;
  /** `verify` when only the verify measurements ran (then crypto, single and rotate are absent). */
  only: 'verify' | undefined;
  rotateArgs: string[];
  /** A what-if schema variant (--what-if), described; undefined for pg-rekey's own schema. */
  whatIf: string | undefined;
  manual: Timing | undefined;
  crypto: Timing | undefined;
  single: Timing | undefined;
  rotate: RotateTiming | undefined;
  rotate5: RotateTiming | undefined;
  /** pg-rekey verify on each rotated table (N, 5N, then the --verify-rows sizes), with that table's rotate. */
  verify: VerifyAtSize[];
}

/** Rows per second of a timing. */
export const rate = (t: { rows: number; ms: number }): number => (t.rows / t.ms) * 1000;

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const mib = (kib: number | null) => (kib === null ? 'n/a' : `${(kib / 1024).toFixed(0)} MiB`);

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

const check = (ok: boolean | undefined) => (ok === undefined ? 'not measured' : ok ? 'met' : 'NOT met');

/** The rotate measurements (a)–(e) and their targets (issue 4). */
function rotateSection(r: BenchReport, rotate: RotateTiming, crypto: Timing, single: Timing): string[] {
  const rot = { rows: rotate.rows, ms: rotate.wallMs };
  const rotInner = { rows: rotate.rows, ms: rotate.rotationMs };
  const rows: string[][] = [];
  const add = (label: string, t: { rows: number; ms: number } | undefined, rss = '') =>
    rows.push(t ? [label, fmt(t.rows), (t.ms / 1000).toFixed(1), fmt(rate(t)), rss] : [label, '-', '-', 'skipped', rss]);
  add('(a) manual loop: OFFSET pages of 1,000, per-row UPDATE', r.manual);
  add('(b) crypto only, one core (no database)', crypto);
  add('(c) single-statement UPDATE of both columns', single);
  const runs = rotate.runsRowsPerSecond;
  add(`(d) pg-rekey rotate (whole CLI process)${runs ? `, median of ${runs.length}` : ''}`, rot, mib(rotate.peakRssKiB));
  add('    of which the rotation itself', rotInner);
  if (r.rotate5) add('(e) pg-rekey rotate at 5N (whole CLI process)', { rows: r.rotate5.rows, ms: r.rotate5.wallMs }, mib(r.rotate5.peakRssKiB));
  const vsCrypto = rate(rot) / rate(crypto);
  const vsManual = r.manual ? rate(rot) / rate(r.manual) : undefined;
  const rss = r.rotate5?.peakRssKiB && rotate.peakRssKiB ? r.rotate5.peakRssKiB / rotate.peakRssKiB : undefined;
  return [
    table(['measurement', 'rows', 'seconds', 'rows/s', 'peak RSS'], rows),
    ...(runs ? [`    (d) runs: ${runs.map(fmt).join(', ')} rows/s`] : []),
    ...cpuLines(r.machine.cpus, rotate, crypto),
    '',
    `pg-rekey / crypto-only (one core): ${vsCrypto.toFixed(2)}×  (target ≥ 0.9×: ${check(vsCrypto >= 0.9)}; stretch ≥ 1.3×: ${check(vsCrypto >= 1.3)})`,
    `pg-rekey / manual loop:            ${vsManual === undefined ? 'n/a' : `${vsManual.toFixed(2)}×`}  (target ≥ 3×: ${check(vsManual === undefined ? undefined : vsManual >= 3)})`,
    `peak RSS 5N / N:                   ${rss === undefined ? 'n/a' : `${rss.toFixed(2)}`}  (target ≤ 1.2: ${check(rss === undefined ? undefined : rss <= 1.2)})`,
  ];
}

/**
 * Where (d)'s CPU went, per 1,000 rows, and the ceiling that puts on any
 * schedule: the cores can do no more than cores × rows / (CPU seconds spent).
 */
function cpuLines(cores: number, rotate: RotateTiming, crypto: Timing): string[] {
  const { pgRekey, postgres } = rotate.cpu;
  if (pgRekey === null) return [];
  const per1000 = (seconds: number) => (seconds * 1_000_000) / rotate.rows;
  const cryptoPer1000 = (crypto.ms * 1000) / crypto.rows;
  const head = `    CPU of (d) per 1,000 rows: pg-rekey ${per1000(pgRekey).toFixed(1)} ms (the crypto alone: ${cryptoPer1000.toFixed(1)} ms)`;
  if (postgres === null) return [`${head}, PostgreSQL n/a`];
  const ceiling = (cores * 1_000_000) / (per1000(pgRekey) + per1000(postgres));
  return [
    `${head}, PostgreSQL ${per1000(postgres).toFixed(1)} ms`,
    `    → at that CPU cost no schedule on ${cores} cores beats ${fmt(ceiling)} rows/s (${(ceiling / rate(crypto)).toFixed(2)}× crypto-only)`,
  ];
}

/** (f) verify on each rotated table, against that table's rotate (issue 5: at least as fast; memory flat). */
function verifySection(v: VerifyAtSize[]): string[] {
  if (v.length === 0) return [];
  const rows = v.map((x) => {
    const ver = { rows: x.rows, ms: x.verify.wallMs };
    const rot = { rows: x.rows, ms: x.rotate.wallMs };
    return [
      `(f) ${x.label}`,
      fmt(x.rows),
      (x.verify.wallMs / 1000).toFixed(1),
      fmt(rate(ver)),
      fmt(rate({ rows: x.rows, ms: x.verify.verifyMs })),
      fmt(rate(rot)),
      `${(rate(ver) / rate(rot)).toFixed(2)}×`,
      mib(x.verify.peakRssKiB),
      mib(x.rotate.peakRssKiB),
    ];
  });
  const slowest = Math.min(...v.map((x) => x.rotate.wallMs / x.verify.wallMs));
  // Memory: over the --verify-rows sizes when there are two or more, else over all tables.
  const sized = v.filter((x) => x.sized && x.verify.peakRssKiB !== null);
  const pool = (sized.length >= 2 ? sized : v.filter((x) => x.verify.peakRssKiB !== null)).sort((a, b) => a.rows - b.rows);
  const smallest = pool[0];
  const largest = pool[pool.length - 1];
  const flat = smallest && largest && smallest.rows < largest.rows ? largest.verify.peakRssKiB! / smallest.verify.peakRssKiB! : undefined;
  // Growth between the two largest tables: what memory would still grow per row, past start-up.
  const [big1, big2] = [pool[pool.length - 2], pool[pool.length - 1]];
  const perRow =
    big1 && big2 && big1.rows < big2.rows ? ((big2.verify.peakRssKiB! - big1.verify.peakRssKiB!) / 1024 / (big2.rows - big1.rows)) * 100_000 : undefined;
  const lines = [
    `verify / rotate, slowest table:    ${slowest.toFixed(2)}×  (target ≥ 1×: ${check(slowest >= 1)})`,
    flat === undefined
      ? 'verify peak RSS largest / smallest: n/a'
      : `verify peak RSS ${fmt(largest!.rows)} / ${fmt(smallest!.rows)} rows: ${flat.toFixed(2)}  (target ≤ 1.2: ${check(flat <= 1.2)})`,
  ];
  if (perRow !== undefined && pool.length > 2) {
    lines.push(`verify peak RSS growth ${fmt(big1!.rows)} → ${fmt(big2!.rows)} rows: ${perRow.toFixed(2)} MiB per 100,000 rows`);
  }
  return [
    '',
    'pg-rekey verify on the rotated table (whole CLI process), against the rotate of that same table:',
    table(['measurement', 'rows', 'seconds', 'verify rows/s', 'scan only', 'rotate rows/s', 'verify/rotate', 'verify RSS', 'rotate RSS'], rows),
    '',
    ...lines,
  ];
}

/** The human-readable table and the target checks. */
export function formatReport(r: BenchReport): string {
  const main = r.rotate && r.crypto && r.single ? rotateSection(r, r.rotate, r.crypto, r.single) : [];
  return [
    `pg-rekey benchmark: ${r.only === 'verify' ? 'verify only' : `${fmt(r.rows)} rows`}, ${r.machine.cpus} × ${r.machine.cpuModel}, Node ${r.machine.node}, ${r.server} PostgreSQL`,
    r.rotateArgs.length > 0 ? `rotate args: ${r.rotateArgs.join(' ')}` : 'rotate: defaults; verify: defaults',
    ...(r.whatIf ? [`WHAT-IF, not pg-rekey's schema: rotate measured with ${r.whatIf}`] : []),
    ...(main.length > 0 ? ['', ...main] : []),
    ...verifySection(r.verify),
  ].join('\n');
}
