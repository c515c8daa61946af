/**
 * `npm run bench [-- --rows N]`: seeds the reference workload (DESIGN §7) and
 * measures, in one run and on fresh copies of the same data, (a) the manual
 * procedure's loop, (b) the crypto alone on one core, (c) a single-statement
 * UPDATE, (d) `pg-rekey rotate` with its defaults as a CLI subprocess, and (e)
 * that process's peak RSS at N and 5N rows. Prints a table, writes JSON to
 * bench/results/. Options: --database-url URL (else PG_REKEY_BENCH_DATABASE_URL,
 * else an embedded PostgreSQL), --skip-manual, --skip-rss (no 5N run), --quick
 * (both), --profile DIR (CPU profile of the rotate run), -- rotate args after --rotate-args.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { measureCryptoOnly, measureManualLoop, measureSingleUpdate, type Timing } from './baselines.js';
import { startBenchServer } from './benchServer.js';
import { formatReport, type BenchReport } from './report.js';
import { measureRotate, prepareTemplate } from './rotateRun.js';
import { createDatabase, dropDatabase, seedPeople } from './workload.js';

interface Args {
  rows: number;
  databaseUrl: string | undefined;
  skipManual: boolean;
  skipRss: boolean;
  profileDir: string | undefined;
  rotateArgs: string[];
}

function parseArgs(argv: string[]): Args {
  const args: Args = {
    rows: 200_000,
    databaseUrl: process.env.PG_REKEY_BENCH_DATABASE_URL || undefined,
    skipManual: false,
    skipRss: false,
    profileDir: undefined,
    rotateArgs: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--rows') args.rows = Number(value());
    else if (a === '--database-url') args.databaseUrl = value();
    else if (a === '--skip-manual') args.skipManual = true;
    else if (a === '--skip-rss') args.skipRss = true;
    else if (a === '--quick') args.skipManual = args.skipRss = true;
    else if (a === '--profile') args.profileDir = value();
    else if (a === '--rotate-args') args.rotateArgs = argv.splice(i + 1);
    else throw new Error(`unknown option ${a}`);
  }
  if (!Number.isInteger(args.rows) || args.rows < 1000) throw new Error('--rows must be an integer of at least 1000');
  return args;
}

const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);

async function timed(label: string, fn: () => Promise<Timing>): Promise<Timing> {
  log(`${label}…`);
  const t = await fn();
  log(`${label}: ${t.rows} rows in ${(t.ms / 1000).toFixed(1)} s = ${Math.round((t.rows / t.ms) * 1000)} rows/s`);
  return t;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const server = await startBenchServer(args.databaseUrl, log);
  const n = args.rows;
  const made: string[] = [];
  const workspaces: { cleanup(): Promise<void> }[] = [];
  const db = async (name: string, template?: string) => {
    made.push(name);
    return createDatabase(server.adminUrl, name, template);
  };
  try {
    log(`seeding ${n} rows`);
    const seedUrl = await db('bench_seed');
    await seedPeople(seedUrl, n);
    made.push('bench_ready');
    const ready = await prepareTemplate(server.adminUrl, 'bench_seed', 'bench_ready');
    workspaces.push(ready);

    const crypto = await timed('(b) crypto only, one core', () => measureCryptoOnly(seedUrl));
    const single = await timed('(c) single-statement UPDATE', async () => {
      const url = await db('bench_update', 'bench_seed');
      try {
        return await measureSingleUpdate(url);
      } finally {
        await dropDatabase(server.adminUrl, 'bench_update');
      }
    });
    log('(d) pg-rekey rotate…');
    const rotate = await measureRotate(server.adminUrl, ready, 'bench_rotate', n, args.rotateArgs, args.profileDir);
    log(`(d) pg-rekey rotate: ${Math.round((n / rotate.wallMs) * 1000)} rows/s, peak RSS ${rotate.peakRssKiB} KiB`);
    const manual = args.skipManual
      ? undefined
      : await timed('(a) manual loop (OFFSET + per-row UPDATE)', async () => {
          const url = await db('bench_manual', 'bench_seed');
          try {
            return await measureManualLoop(url);
          } finally {
            await dropDatabase(server.adminUrl, 'bench_manual');
          }
        });

    let rotate5: Awaited<ReturnType<typeof measureRotate>> | undefined;
    if (!args.skipRss) {
      log(`seeding ${5 * n} rows for the memory run`);
      await seedPeople(await db('bench_seed5'), 5 * n, n);
      made.push('bench_ready5');
      const ready5 = await prepareTemplate(server.adminUrl, 'bench_seed5', 'bench_ready5');
      workspaces.push(ready5);
      log('(e) pg-rekey rotate at 5N…');
      rotate5 = await measureRotate(server.adminUrl, ready5, 'bench_rotate5', 5 * n, args.rotateArgs, undefined);
      log(`(e) 5N: ${Math.round((5 * n / rotate5.wallMs) * 1000)} rows/s, peak RSS ${rotate5.peakRssKiB} KiB`);
    }

    const report: BenchReport = {
      date: new Date().toISOString(),
      rows: n,
      machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', memoryMiB: Math.round(totalmem() / 2 ** 20), node: process.version },
      server: server.kind,
      rotateArgs: args.rotateArgs,
      manual,
      crypto,
      single,
      rotate,
      rotate5,
    };
    const dir = fileURLToPath(new URL('../../bench/results/', import.meta.url));
    await mkdir(dir, { recursive: true });
    const file = `${dir}${report.date.replace(/[:.]/g, '-')}.json`;
    await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
    process.stdout.write(`${formatReport(report)}\nJSON: ${file}\n`);
  } finally {
    for (const ws of workspaces) await ws.cleanup();
    for (const name of made.reverse()) await dropDatabase(server.adminUrl, name).catch(() => {});
    await server.stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exitCode = 1;
});
