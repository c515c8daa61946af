import type { Argv, CommandModule } from 'yargs';
import { createCodecFromKeyring } from '../../crypto/createCodec.js';
import type { Codec } from '../../crypto/codec.js';
import { UsageError } from '../../errors.js';
import type { SampleSpec } from '../../verify/readTarget.js';
import { runVerify, type VerifyOutcome } from '../../verify/verify.js';
import { ExitCode } from '../exitCodes.js';
import { formatTable } from '../output.js';
import { boundedNumberOption, wholeNumberOption } from '../numberOptions.js';
import { checkChosenTargets, type ChosenTargets, type KeysBeforeWriting, type Session } from '../session.js';
import { withStoppableSession } from '../stoppableSession.js';
import type { CommandContext } from '../context.js';
import type { Wrap } from './index.js';

interface VerifyArgs {
  target?: string[];
  without?: string[];
  sample?: number;
  samplePercent?: number;
  seed?: number;
  fixVersions: boolean;
  chunkRows: number;
}

// Findings printed in human output; --json and the failures table get up to 1000.
const PRINTED_FINDINGS = 100;

/** `pg-rekey verify`: prove every target value is readable, and that key-version hints are true. */
export function verifyCommand(wrap: Wrap): CommandModule {
  return {
    command: 'verify',
    describe: 'Decrypt every target value (read-only) and report keys, NULLs, plaintext, legacy values and failures; exit 1 on any problem',
    builder: (y: Argv) =>
      y
        .option('target', { type: 'string', array: true, describe: 'Limit to table.column (repeatable), e.g. people.email' })
        .option('without', { type: 'string', array: true, describe: 'Withhold this key (repeatable): rehearse its retirement' })
        .option('sample', wholeNumberOption('sample', { min: 1, describe: 'Check about N random rows per target, not all' }))
        .option('sample-percent', boundedNumberOption('sample-percent', { above: 0, atMost: 100, describe: 'Check about P percent of each target, not all' }))
        .option('seed', wholeNumberOption('seed', { min: 0, describe: 'Seed of the sample, to check the same rows again' }))
        .option('fix-versions', {
          type: 'boolean',
          default: false,
          describe: 'Set wrong or unknown key-version hints to the key that decrypted the value (compare-and-swap; values unchanged)',
        })
        .option(
          'chunk-rows',
          wholeNumberOption('chunk-rows', {
            min: 1,
            default: 10_000,
            describe: 'Rows per read-only transaction of the scan (no snapshot is held longer than one chunk)',
          }),
        )
        .conflicts('sample', 'sample-percent'),
    handler: wrap<VerifyArgs>(async (ctx, argv) => {
      // A cron job's timeout or a Ctrl-C: stop between pages and record the run
      // (with the key-version repairs committed so far, which the retire gate
      // must see) rather than die with them unrecorded.
      return withStoppableSession(
        ctx,
        undefined,
        {
          // register 'all': a key's version must exist to check hints against it.
          register: 'all',
          maxConnections: 3,
          // An unknown --without key, or a target that cannot be verified, exits 2 before any key is registered.
          checkBeforeWriting: async (pool, config, keys) => {
            assertWithheldKeysKnown(argv.without ?? [], keys);
            return checkChosenTargets(argv.target, argv.fixVersions ? 'key-versions' : 'none')(pool, config, keys);
          },
        },
        (session, chosen, stop) => {
          // From here a stop is taken between pages (runVerify), not by cancelling statements.
          session.endStartUp();
          return verify(ctx, session, argv, chosen, stop.signal);
        },
        () =>
          ctx.output.result(
            { status: 'stopped', runId: null },
            () => 'Stopped before the end of the check: it proves nothing (a scan already under way is recorded as a failed verify run). Run "pg-rekey verify" again.',
          ),
      );
    }),
  };
}

/** Each --without key is configured or registered (withholding a key nobody knows is a typo). */
function assertWithheldKeysKnown(without: readonly string[], keys: KeysBeforeWriting): void {
  for (const id of without) {
    if (!keys.configured.some((k) => k.id === id) && !keys.registry.some((k) => k.keyId === id)) {
      throw new UsageError(`--without ${id}: no such key is configured or registered — check the key id ("pg-rekey keys list")`);
    }
  }
}

async function verify(ctx: CommandContext, session: Session, argv: VerifyArgs, chosen: ChosenTargets, signal: AbortSignal): Promise<0 | 1> {
  const without = [...new Set(argv.without ?? [])];
  const { targets, partial } = chosen;
  const codecs = new Map<string, Codec>();
  for (const t of targets) codecs.set(t.name, createCodecFromKeyring(t.format, await session.keyring(t.format)));
  const usable = [...new Set([...codecs.values()].flatMap((c) => c.keyring.keys.map((k) => k.id)))];
  const sample: SampleSpec | null =
    argv.sample !== undefined ? { rows: argv.sample } : argv.samplePercent !== undefined ? { percent: argv.samplePercent } : null;
  const outcome = await runVerify({
    pool: session.pool,
    schema: session.schema,
    actor: session.actor,
    targets,
    codecs,
    registry: session.registry,
    without,
    sourceKeys: usable.filter((id) => !without.includes(id)),
    sample,
    ...(argv.seed !== undefined ? { seed: argv.seed } : {}),
    fixVersions: argv.fixVersions,
    chunkRows: argv.chunkRows,
    partial,
    signal,
    onProgress: (target, rows) => {
      if (rows % 100_000 < 2_000) ctx.logger.debug({ target, rows }, 'verify progress');
    },
  });
  ctx.output.result(outcome, () => formatOutcome(outcome));
  return outcome.status === 'succeeded' ? ExitCode.OK : ExitCode.FAILURES;
}

function formatOutcome(o: VerifyOutcome): string {
  const keys = [...new Set(o.columns.flatMap((c) => Object.keys(c.byKey)))].sort();
  const rows = o.columns.map((c) => [
    `${c.target}.${c.column}`,
    c.rows,
    c.nulls,
    c.empty,
    ...keys.map((k) => c.byKey[k] ?? 0),
    c.plaintext,
    c.legacy,
    Object.values(c.failed).reduce((a, b) => a + (b ?? 0), 0),
    c.versions.mismatched,
    c.versions.unknown,
    c.versions.fixed,
  ]);
  const headers = ['COLUMN', 'ROWS', 'NULL', 'EMPTY', ...keys.map((k) => `KEY ${k}`), 'PLAINTEXT', 'LEGACY', 'FAILED', 'HINT WRONG', 'HINT NULL', 'HINTS FIXED'];
  const lines = [
    `Verify run ${o.runId}${o.without.length > 0 ? ` without key ${o.without.join(', ')}` : ''}${o.sampled ? ' (sample)' : ''}: ${o.status}`,
    formatTable(headers, rows),
  ];
  for (const [target, s] of Object.entries(o.samples)) {
    lines.push(
      s.method === 'full-scan'
        ? `${target}: sample covers the whole table (${s.rowsChecked} rows, about ${s.estimatedRows} estimated)`
        : `${target}: sampled ${s.rowsChecked} of about ${s.estimatedRows} rows in ${s.windowCount} windows of up to ${s.windowRows} rows (seed ${s.seed}); see --json for the window keys`,
    );
  }
  for (const f of o.findings.slice(0, PRINTED_FINDINGS)) {
    const where = `${f.target}.${f.column} at ${JSON.stringify(f.rowKey)}`;
    const detail =
      f.reason === 'version-mismatch'
        ? `: hint names key ${f.hintKey}, value is under key ${f.decryptedBy}${f.fixed ? ' (fixed)' : ''}`
        : f.withheldKey
          ? ` (only withheld key ${f.withheldKey} decrypts it)`
          : '';
    lines.push(`  ${where}: ${f.reason}${detail}`);
  }
  const more = o.findings.length - Math.min(o.findings.length, PRINTED_FINDINGS) + o.findingsDropped;
  if (more > 0) lines.push(`  … and ${more} more (see --json or the failures of run ${o.runId})`);
  lines.push(`${o.examined} rows in ${(o.durationMs / 1000).toFixed(1)} s (${o.rowsPerSecond} rows/s).`);
  lines.push(
    o.status === 'succeeded'
      ? o.without.length > 0
        ? `Every value is readable without key ${o.without.join(', ')}.`
        : 'Every value is readable.'
      : `${o.problems} problem value(s) — see docs/troubleshooting.md for what each reason means and what to do.`,
  );
  return lines.join('\n');
}
