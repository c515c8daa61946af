/**
 * The benchmark's report: the JSON shape written to bench/results/ and the
 * table printed for humans, with the ratios the targets of issue 4 are about.
 */
import type { Timing } from './baselines.js';
import type { RotateTiming } from './rotateRun.js';

/** Everything one benchmark run measured. */
export interface BenchReport {
  date: string;
  rows: number;
  machine: { cpus: number; cpuModel: string; memoryMiB: number; node: string };
  server: string;
  rotateArgs: string[];
  manual: Timing | undefined;
  crypto: Timing;
  single: Timing;
  rotate: RotateTiming;
  rotate5: RotateTiming | undefined;
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

/** The human-readable table and the target checks. */
export function formatReport(r: BenchReport): string {
  const rot = { rows: r.rotate.rows, ms: r.rotate.wallMs };
  const rotInner = { rows: r.rotate.rows, ms: r.rotate.rotationMs };
  const rows: string[][] = [];
  const add = (label: string, t: { rows: number; ms: number } | undefined, rss = '') =>
    rows.push(t ? [label, fmt(t.rows), (t.ms / 1000).toFixed(1), fmt(rate(t)), rss] : [label, '-', '-', 'skipped', rss]);
  add('(a) manual loop: OFFSET pages of 1,000, per-row UPDATE', r.manual);
  add('(b) crypto only, one core (no database)', r.crypto);
  add('(c) single-statement UPDATE of both columns', r.single);
  add('(d) pg-rekey rotate (whole CLI process)', rot, mib(r.rotate.peakRssKiB));
  add('    of which the rotation itself', rotInner);
  if (r.rotate5) add('(e) pg-rekey rotate at 5N (whole CLI process)', { rows: r.rotate5.rows, ms: r.rotate5.wallMs }, mib(r.rotate5.peakRssKiB));
  const vsCrypto = rate(rot) / rate(r.crypto);
  const vsManual = r.manual ? rate(rot) / rate(r.manual) : undefined;
  const rss =
    r.rotate5?.peakRssKiB && r.rotate.peakRssKiB ? r.rotate5.peakRssKiB / r.rotate.peakRssKiB : undefined;
  const check = (ok: boolean | undefined) => (ok === undefined ? 'not measured' : ok ? 'met' : 'NOT met');
  return [
    `pg-rekey benchmark: ${fmt(r.rows)} rows, ${r.machine.cpus} × ${r.machine.cpuModel}, Node ${r.machine.node}, ${r.server} PostgreSQL`,
    r.rotateArgs.length > 0 ? `rotate args: ${r.rotateArgs.join(' ')}` : 'rotate: defaults',
    '',
    table(['measurement', 'rows', 'seconds', 'rows/s', 'peak RSS'], rows),
    '',
    `pg-rekey / crypto-only (one core): ${vsCrypto.toFixed(2)}×  (target ≥ 0.9×: ${check(vsCrypto >= 0.9)}; stretch ≥ 1.3×: ${check(vsCrypto >= 1.3)})`,
    `pg-rekey / manual loop:            ${vsManual === undefined ? 'n/a' : `${vsManual.toFixed(2)}×`}  (target ≥ 3×: ${check(vsManual === undefined ? undefined : vsManual >= 3)})`,
    `peak RSS 5N / N:                   ${rss === undefined ? 'n/a' : `${rss.toFixed(2)}`}  (target ≤ 1.2: ${check(rss === undefined ? undefined : rss <= 1.2)})`,
  ].join('\n');
}
