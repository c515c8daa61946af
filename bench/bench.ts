/**
 * `npm run bench [-- options]`: seeds the reference workload (DESIGN §7) and
 * measures, in one run and on fresh copies of the same data, (a) the manual
 * procedure's loop, (b) the crypto alone on one core, (c) a single-statement
 * UPDATE, (d) `pg-rekey rotate` with its defaults as a CLI subprocess, (e) that
 * process's peak RSS at N and 5N rows, and (f) `pg-rekey verify` as a CLI
 * subprocess on each rotated table: at N and 5N, and at the --verify-rows sizes
 * (default 50,000 and 500,000; issue 5: verify's memory stays flat), each
 * compared with the rotate of the same table. Prints a table, writes JSON to
 * bench/results/. Run with --help for the options.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { measureCryptoOnly, measureManualLoop, measureSingleUpdate, type Timing } from './baselines.js';
import { startBenchServer } from './benchServer.js';
import { formatReport, type BenchReport } from './report.js';
import { measureRotate, prepareTemplate, type RotateTiming } from './rotateRun.js';
import { measureVerify, type VerifyAtSize } from './verifyRun.js';
import { createDatabase, dropDatabase, seedPeople } from './workload.js';

const HELP = `Usage: npm run bench -- [options]

  --rows N              table size N of the main run (default 200000, at least 1000)
  --repeat K            run (d) K times on fresh copies and report the median (default 3): the
                        machine's noise moves a single run by ±10 %
  --database-url URL    superuser URL of a PostgreSQL to use (else env PG_REKEY_BENCH_DATABASE_URL,
                        else an embedded PostgreSQL started and removed here)
  --skip-manual         skip (a), the manual loop (the slowest part)
  --skip-rss            skip (e), the rotate + verify at 5N
  --verify-rows A,B,…   table sizes of the separate verify measurements (default 50000,500000)
  --skip-verify-sizes   skip the separate verify measurements (verify at N and 5N still runs)
  --quick               --skip-manual --skip-rss --skip-verify-sizes
  --only verify         only the separate verify measurements (seed, rotate, verify per size)
  --profile DIR         write a CPU profile of the rotate run (d) to DIR
  --what-if no-version-fks
                        measure rotate with the key-version foreign keys dropped on each copy: a
                        schema pg-rekey does not create, to weigh that design change (DESIGN §3)
  --rotate-args …       pass the rest of the command line to every pg-rekey rotate
  --help                this text
`;

interface Args {
  rows: number;
  repeat: number;
  verifyRows: number[];
  skipVerifySizes: boolean;
  only: 'verify' | undefined;
  databaseUrl: string | undefined;
  skipManual: boolean;
  skipRss: boolean;
  profileDir: string | undefined;
  whatIf: keyof typeof WHAT_IFS | undefined;
  rotateArgs: string[];
}

/** Schema variants --what-if can measure: not what pg-rekey installs, only to weigh a design change. */
const WHAT_IFS = {
  'no-version-fks': {
    describe: 'key-version foreign keys dropped',
    sql: 'ALTER TABLE people DROP CONSTRAINT people_email_kv_fkey, DROP CONSTRAINT people_mobno_kv_fkey',
  },
} as const;

function parseArgs(argv: string[]): Args {
  const args: Args = {
    rows: 200_000,
    repeat: 3,
    verifyRows: [50_000, 500_000],
    skipVerifySizes: false,
    only: undefined,
    databaseUrl: process.env.PG_REKEY_BENCH_DATABASE_URL || undefined,
    skipManual: false,
    skipRss: false,
    profileDir: undefined,
    whatIf: undefined,
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
    else if (a === '--repeat') args.repeat = Number(value());
    else if (a === '--database-url') args.databaseUrl = value();
    else if (a === '--skip-manual') args.skipManual = true;
    else if (a === '--skip-rss') args.skipRss = true;
    else if (a === '--quick') args.skipManual = args.skipRss = args.skipVerifySizes = true;
    else if (a === '--verify-rows') args.verifyRows = value().split(',').map((v) => Number(v.trim().replace(/_/g, '')));
    else if (a === '--skip-verify-sizes') args.skipVerifySizes = true;
    else if (a === '--only') {
      const v = value();
      if (v !== 'verify') throw new Error(`--only takes "verify", not ${v}`);
      args.only = v;
    } else if (a === '--help' || a === '-h') {
      process.stdout.write(HELP);
      process.exit(0);
    }
    else if (a === '--profile') args.profileDir = value();
    else if (a === '--what-if') {
      const v = value();
      if (!(v in WHAT_IFS)) throw new Error(`--what-if takes ${Object.keys(WHAT_IFS).join(', ')}, not ${v}`);
      args.whatIf = v as keyof typeof WHAT_IFS;
    }
    else if (a === '--rotate-args') args.rotateArgs = argv.splice(i + 1);
    else throw new Error(`unknown option ${a}`);
  }
  if (!Number.isInteger(args.rows) || args.rows < 1000) throw new Error('--rows must be an integer of at least 1000');
  if (!Number.isInteger(args.repeat) || args.repeat < 1) throw new Error('--repeat must be an integer of at least 1');
  if (args.verifyRows.length === 0 || args.verifyRows.some((r) => !Number.isInteger(r) || r < 1000)) {
    throw new Error('--verify-rows takes comma-separated integers of at least 1000');
  }
  if (args.only === 'verify' && args.skipVerifySizes) throw new Error('--only verify and --skip-verify-sizes (or --quick) exclude each other');
  return args;
}

const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);

async function timed(label: string, fn: () => Promise<Timing>): Promise<Timing> {
  log(`${label}…`);
  const t = await fn();
  log(`${label}: ${t.rows} rows in ${(t.ms / 1000).toFixed(1)} s = ${Math.round((t.rows / t.ms) * 1000)} rows/s`);
  return t;
}

const perSecond = (rows: number, ms: number) => Math.round((rows / ms) * 1000);

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
  const verifies: VerifyAtSize[] = [];
  /**
   * Rotates a fresh copy of `ready` (measured) `repeat` times and keeps the
   * median run by wall clock; verifies the first rotated table (measured).
   */
  const rotateThenVerify = async (
    step: string,
    label: string,
    ready: Awaited<ReturnType<typeof prepareTemplate>>,
    name: string,
    rows: number,
    profileDir: string | undefined,
    repeat = 1,
  ): Promise<RotateTiming> => {
    const at = `${step} ${rows.toLocaleString('en-US')} rows`;
    let verify: VerifyAtSize['verify'] | undefined;
    const runs: RotateTiming[] = [];
    for (let i = 0; i < repeat; i++) {
      log(`${at}: pg-rekey rotate of ${rows} rows${repeat > 1 ? ` (run ${i + 1} of ${repeat})` : ''}…`);
      const run = await measureRotate(server.adminUrl, ready, name, rows, {
        extraArgs: args.rotateArgs,
        profileDir: i === 0 ? profileDir : undefined,
        serverIsLocal: server.kind === 'embedded',
        prepareSql: args.whatIf ? WHAT_IFS[args.whatIf].sql : undefined,
        after: i > 0 ? undefined : async (url) => {
          log(`${at}: pg-rekey verify of the rotated table…`);
          verify = await measureVerify(url, ready.workspace, rows, []);
        },
      });
      log(`${at}: rotate ${perSecond(rows, run.wallMs)} rows/s, peak RSS ${run.peakRssKiB} KiB`);
      runs.push(run);
    }
    const rotate = [...runs].sort((a, b) => a.wallMs - b.wallMs)[Math.floor((runs.length - 1) / 2)]!;
    if (repeat > 1) {
      rotate.runsRowsPerSecond = runs.map((r) => perSecond(rows, r.wallMs));
      log(`${at}: median rotate ${perSecond(rows, rotate.wallMs)} rows/s of ${rotate.runsRowsPerSecond.join(', ')}`);
    }
    if (verify) {
      log(`${at}: verify ${perSecond(rows, verify.wallMs)} rows/s, peak RSS ${verify.peakRssKiB} KiB`);
      verifies.push({ label, sized: step === '(f)', rows, rotate, verify });
    }
    return rotate;
  };
  try {
    let manual: Timing | undefined;
    let crypto: Timing | undefined;
    let single: Timing | undefined;
    let rotate: RotateTiming | undefined;
    let rotate5: RotateTiming | undefined;
    if (args.only !== 'verify') {
      log(`seeding ${n} rows`);
      const seedUrl = await db('bench_seed');
      await seedPeople(seedUrl, n);
      made.push('bench_ready');
      const ready = await prepareTemplate(server.adminUrl, 'bench_seed', 'bench_ready');
      workspaces.push(ready);

      crypto = await timed('(b) crypto only, one core', () => measureCryptoOnly(seedUrl));
      single = await timed('(c) single-statement UPDATE', async () => {
        const url = await db('bench_update', 'bench_seed');
        try {
          return await measureSingleUpdate(url);
        } finally {
          await dropDatabase(server.adminUrl, 'bench_update');
        }
      });
      rotate = await rotateThenVerify('(d)', `N, (d)'s table`, ready, 'bench_rotate', n, args.profileDir, args.repeat);
      manual = args.skipManual
        ? undefined
        : await timed('(a) manual loop (OFFSET + per-row UPDATE)', async () => {
            const url = await db('bench_manual', 'bench_seed');
            try {
              return await measureManualLoop(url);
            } finally {
              await dropDatabase(server.adminUrl, 'bench_manual');
            }
          });

      if (!args.skipRss) {
        log(`seeding ${5 * n} rows for the memory run`);
        await seedPeople(await db('bench_seed5'), 5 * n, n);
        made.push('bench_ready5');
        const ready5 = await prepareTemplate(server.adminUrl, 'bench_seed5', 'bench_ready5');
        workspaces.push(ready5);
        rotate5 = await rotateThenVerify('(e)', `5N, (e)'s table`, ready5, 'bench_rotate5', 5 * n, undefined);
      }
    }

    if (!args.skipVerifySizes) {
      // Sizes beyond the smallest reuse its ciphertexts (same decrypt cost), so seeding stays cheap.
      const unique = Math.min(...args.verifyRows);
      for (const size of args.verifyRows) {
        const seed = `bench_vseed_${size}`;
        const readyName = `bench_vready_${size}`;
        log(`(f) seeding ${size} rows for verify`);
        await seedPeople(await db(seed), size, unique);
        made.push(readyName);
        const ready = await prepareTemplate(server.adminUrl, seed, readyName);
        workspaces.push(ready);
        await rotateThenVerify('(f)', `${size.toLocaleString('en-US')} rows`, ready, `bench_vrun_${size}`, size, undefined);
        // Free the disk before the next size.
        await ready.cleanup();
        await dropDatabase(server.adminUrl, readyName);
        await dropDatabase(server.adminUrl, seed);
      }
    }

    const report: BenchReport = {
      date: new Date().toISOString(),
      rows: n,
      only: args.only,
      machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', memoryMiB: Math.round(totalmem() / 2 ** 20), node: process.version },
      server: server.kind,
      rotateArgs: args.rotateArgs,
      whatIf: args.whatIf ? WHAT_IFS[args.whatIf].describe : undefined,
      manual,
      crypto,
      single,
      rotate,
      rotate5,
      verify: verifies,
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

main().then(
  () => undefined,
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
