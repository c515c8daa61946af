import { hostname } from 'node:os';
import type pg from 'pg';
import type { Argv, CommandModule } from 'yargs';
import type { ResolvedConfig } from '../../config/loadConfig.js';
import { quoteIdent } from '../../db/quote.js';
import { UsageError } from '../../errors.js';
import { requireActiveKey, type RegisteredKey } from '../../schema/registry.js';
import type { ResolvedTarget } from '../../schema/resolveTarget.js';
import { selectAnyWorkSql } from '../../rotation/batchSql.js';
import { abandonOpenRun, joinCommand, startOrJoinRun } from '../../rotation/planRun.js';
import { selectRangesSql } from '../../rotation/rangesSql.js';
import { asTargetChanged } from '../../rotation/targetChanged.js';
import { assertReplicaLagReadable } from '../../rotation/throttle.js';
import { runRotation, type RotationOutcome, type RotationSettings } from '../../rotation/rotate.js';
import { CryptoPool, defaultCryptoThreads } from '../../rotation/cryptoPool.js';
import type { BatchTransformer } from '../../rotation/rotateRange.js';
import { ExitCode } from '../exitCodes.js';
import { dryRunUntilStopped } from './rotateDryRun.js';
import { formatOutcome } from './rotateReport.js';
import { createTransform } from './rotateTransform.js';
import { givenOnce } from '../givenOnce.js';
import { wholeNumberOption } from '../numberOptions.js';
import { parseDuration } from '../parseDuration.js';
import { createProgressReporter } from '../progressReporter.js';
import type { StopRequest } from '../stopRequest.js';
import { withStoppableSession } from '../stoppableSession.js';
import { canDrawOn } from '../terminal.js';
import { checkChosenTargets, type KeysBeforeWriting, type ChosenTargets, type Session, type SessionOptions } from '../session.js';
import type { CommandContext } from '../context.js';
import type { Wrap } from './index.js';

/** rotate's parsed options. */
export interface RotateArgs {
  to?: string;
  target?: string[];
  batchSize: number;
  workers: number;
  cryptoThreads: number;
  dryRun: boolean;
  onError: 'continue' | 'abort';
  maxDuration?: string;
  maxRate?: number;
  pauseMs?: number;
  maxReplicaLag?: string;
  lockTimeout: string;
  statementTimeout: string;
  lease: string;
  reason?: string;
  emergency: boolean;
  encryptLegacy: boolean;
  abandonOpenRun: boolean;
}

/**
 * The most --workers accepted: each worker holds a connection of its own, and
 * no PostgreSQL server takes more than 262143 (max_connections' limit). Above
 * it the server can only refuse them (exit 69); far above it (--workers
 * 1000000000, a typo) the process ran out of memory starting them, after the
 * run was planned.
 */
const MAX_WORKERS = 262_143;

/**
 * The most --crypto-threads accepted. Each thread costs tens of MiB and a
 * few milliseconds to start, and no more batches are transformed at once than
 * there are --workers, so threads beyond the cores (or the workers) only cost
 * memory. Unbounded, a typo (--crypto-threads 100000) tried to start that many
 * threads before anything was checked.
 */
const MAX_CRYPTO_THREADS = 64;

/** The shortest --lease accepted: below it a range would change hands at nearly every batch. */
const MIN_LEASE_MS = 1000;

/**
 * The longest --lock-timeout, --statement-timeout and --lease accepted: the
 * largest lock_timeout and statement_timeout PostgreSQL takes (INT_MAX ms,
 * about 24.8 days). Longer ones failed the first batch as an internal error
 * (exit 70), the run just planned left open; a longer lease (past the range of
 * an interval) failed the first claim the same way, and one of weeks would keep
 * a dead worker's range from the others for as long.
 */
const MAX_DURATION_MS = 2 ** 31 - 1;

/** A duration flag of at most MAX_DURATION_MS; a UsageError naming the flag otherwise. */
function boundedDuration(text: string, flag: string): number {
  const ms = parseDuration(text, flag);
  if (ms > MAX_DURATION_MS) {
    throw new UsageError(`--${flag} ${text}: at most ${MAX_DURATION_MS} ms (about 24 days), the longest PostgreSQL takes for a timeout`);
  }
  return ms;
}

/** `pg-rekey rotate`: re-encrypt every target value not yet under the target key. */
export function rotateCommand(wrap: Wrap): CommandModule {
  return {
    command: 'rotate',
    describe: 'Re-encrypt every target value to the target key, online, resumable, in small transactions',
    builder: (y: Argv) =>
      y
        .option('to', { type: 'string', coerce: givenOnce('to'), describe: 'Target key id (default: the registry\'s primary key)' })
        .option('target', { type: 'string', array: true, describe: 'Limit to table.column (repeatable), e.g. people.email' })
        .option('batch-size', wholeNumberOption('batch-size', { min: 1, default: 1000, describe: 'Rows per batch (one transaction each); fewer when values are large, so a batch carries at most about 32 MiB of values' }))
        .option('workers', wholeNumberOption('workers', { min: 1, max: MAX_WORKERS, default: 3, describe: 'Concurrent range workers in this process (each with a connection of its own)' }))
        .option(
          'crypto-threads',
          wholeNumberOption('crypto-threads', { min: 0, max: MAX_CRYPTO_THREADS, default: defaultCryptoThreads(), describe: 'Worker threads for decrypt + encrypt (0: on the main thread)' }),
        )
        .option('dry-run', { type: 'boolean', default: false, describe: 'Read and decrypt everything, write nothing; report what would change (paced by --max-rate and --pause-ms like a rotation)' })
        .option('on-error', { choices: ['continue', 'abort'] as const, default: 'continue' as const, describe: 'On an undecryptable value: record it and go on, or stop' })
        .option('max-duration', { type: 'string', describe: 'Stop cleanly after this long (e.g. 5m) and exit 75; run again to continue' })
        .option('max-rate', wholeNumberOption('max-rate', { min: 1, describe: 'At most this many rows per second' }))
        .option('pause-ms', wholeNumberOption('pause-ms', { min: 0, describe: 'Pause between batches, in milliseconds' }))
        .option('max-replica-lag', { type: 'string', describe: 'Wait while a streaming replica lags more than this (e.g. 10s); needs pg_monitor or pg_read_all_stats. Not applied by --dry-run, which writes nothing' })
        .option('lock-timeout', { type: 'string', default: '5s', describe: 'lock_timeout of each batch; timed-out batches are retried' })
        .option('statement-timeout', { type: 'string', default: '60s', describe: 'statement_timeout of each batch' })
        .option('lease', {
          type: 'string',
          default: '30s',
          describe: `How long a range stays claimed without progress before another worker takes it over (at least ${MIN_LEASE_MS / 1000}s; keep it above the time one batch takes)`,
        })
        .option('reason', { type: 'string', coerce: givenOnce('reason'), describe: 'Why this rotation runs (recorded in the audit trail; joining an unfinished run adds it to the run\'s reason)' })
        .option('encrypt-legacy', {
          type: 'boolean',
          default: false,
          describe: 'Also encrypt values stored in plaintext or in the keyless ENC_V1: format (otherwise reported and left alone)',
        })
        .option('abandon-open-run', {
          type: 'boolean',
          default: false,
          describe: 'Abort an unfinished rotation to another key or targets and start this one (emergency rollback; needs --reason)',
        })
        .option('emergency', { type: 'boolean', default: false, describe: 'Record this as an emergency rotation (requires --reason)' })
        .check((a) => {
          // An empty --to is usually an unset variable in a script: refuse it rather than guess a key.
          if (a.to !== undefined && String(a.to).trim() === '') {
            throw new UsageError('--to needs a key id, e.g. --to 2026q1; leave --to out to rotate to the registry\'s primary key');
          }
          if (a.emergency && !a.reason) throw new UsageError('--emergency needs --reason "<what happened>" for the audit trail');
          if (a['abandon-open-run'] && !a.reason) throw new UsageError('--abandon-open-run needs --reason "<why>" for the audit trail');
          return true;
        }),
    handler: wrap<RotateArgs>(async (ctx, argv) => {
      // Bad input is refused before anything is opened or written.
      const settings = settingsFrom(argv);
      // A run whose only table was dropped (and taken out of the config) can only be abandoned.
      const abandonOnly = argv.abandonOpenRun && !argv.dryRun && (await ctx.config()).targets.length === 0;
      // A dry run writes nothing at all, not even a first-use key registration. Abandoning
      // uses no key, and with no target a new key could not be checked before it is registered.
      const sessionOptions = {
        register: argv.dryRun || abandonOnly ? ('none' as const) : ('all' as const),
        maxConnections: argv.workers * 2 + 2,
        // A --to key that cannot be used, or a target that cannot be rotated (missing, not migrated,
        // rows hidden by RLS…), exits 2 before any key is registered.
        checkBeforeWriting: async (pool: pg.Pool, config: ResolvedConfig, keys: KeysBeforeWriting) => {
          if (argv.to !== undefined) assertTargetKeyUsable(argv.to, keys);
          if (abandonOnly) return { targets: [], partial: false };
          return checkChosenTargets(argv.target, argv.dryRun ? 'none' : 'values')(pool, config, keys);
        },
      };
      // Started now, so the crypto threads load their modules while the session connects and checks keys.
      const cryptoPool = argv.cryptoThreads > 0 ? new CryptoPool(argv.cryptoThreads) : undefined;
      try {
        if (argv.dryRun) return await dryRunUntilStopped(ctx, argv, settings, sessionOptions, cryptoPool);
        return await rotateUntilStopped(ctx, argv, settings, sessionOptions, cryptoPool);
      } finally {
        await cryptoPool?.close();
      }
    }),
  };
}

/** A rotation, stopped cleanly by a signal or --max-duration at any point, even during its start-up. */
function rotateUntilStopped(
  ctx: CommandContext,
  argv: RotateArgs,
  settings: RotationSettings,
  sessionOptions: SessionOptions<ChosenTargets>,
  cryptoPool: CryptoPool | undefined,
) {
  return withStoppableSession(
    ctx,
    settings.maxDurationMs,
    sessionOptions,
    (session, { targets }, stop) => rotate(ctx, session, argv, targets, settings, stop, cryptoPool),
    // The run, if this process was planning it, rolled back; one it was joining stays resumable.
    () =>
      ctx.output.result(
        { status: 'stopped', runId: null },
        () =>
          `Stopped during start-up: this process changed no value. Run "${joinCommand(argv.to, { encryptLegacy: argv.encryptLegacy, onError: argv.onError, target: argv.target })}" again to rotate.`,
      ),
  );
}

/** --to names a configured key that is not retired (it may be unregistered yet: rotate registers it). */
function assertTargetKeyUsable(keyId: string, keys: KeysBeforeWriting): void {
  if (!keys.configured.some((k) => k.id === keyId)) {
    throw new UsageError(`--to ${keyId}: key ${keyId} is not configured here — add it to "keys" in the config file`);
  }
  if (keys.registry.find((r) => r.keyId === keyId)?.state === 'retired') {
    throw new UsageError(`--to ${keyId}: key ${keyId} is retired and can no longer be used`);
  }
}

/** The rotation settings from the flags; throws a UsageError naming a bad duration. */
function settingsFrom(argv: RotateArgs): RotationSettings {
  const settings: RotationSettings = {
    batchSize: argv.batchSize,
    workers: argv.workers,
    leaseMs: boundedDuration(argv.lease, 'lease'),
    lockTimeoutMs: boundedDuration(argv.lockTimeout, 'lock-timeout'),
    statementTimeoutMs: boundedDuration(argv.statementTimeout, 'statement-timeout'),
    onError: argv.onError,
    maxDurationMs: argv.maxDuration === undefined ? undefined : parseDuration(argv.maxDuration, 'max-duration'),
    maxRate: argv.maxRate,
    pauseMs: argv.pauseMs,
    maxReplicaLagMs: argv.maxReplicaLag === undefined ? undefined : parseDuration(argv.maxReplicaLag, 'max-replica-lag'),
  };
  // A lease is renewed only when a batch commits: one shorter than a batch
  // takes (0s) would hand every range to another worker at every batch.
  if (settings.leaseMs < MIN_LEASE_MS) {
    throw new UsageError(
      `--lease ${argv.lease}: a lease must be at least ${MIN_LEASE_MS / 1000}s (default 30s), and should stay well above the time one batch takes, ` +
        'or workers keep taking ranges from each other',
    );
  }
  // A lease is renewed with each batch: a wait between one worker's batches
  // longer than half of it would let other workers take ranges over from a
  // healthy one. --max-rate is the budget of the process, shared by its
  // workers (Throttle): each batch takes batchSize / maxRate of it, so a worker
  // waits for the batches of all the others before its next one — N workers
  // wait N times as long, plus their own --pause-ms. Counting one batch's
  // share let `--workers 4 --batch-size 100 --max-rate 200 --lease 1s` pass,
  // and another process took every range of the healthy worker over.
  const rateMs = settings.maxRate ? ((settings.workers * settings.batchSize) / settings.maxRate) * 1000 : 0;
  const waitMs = (settings.pauseMs ?? 0) + rateMs;
  if (waitMs > settings.leaseMs / 2) {
    throw new UsageError(
      `--pause-ms / --max-rate with --batch-size ${settings.batchSize} and --workers ${settings.workers} wait up to ${Math.round(waitMs)} ms ` +
        `between a worker's batches (the --max-rate budget is shared by the workers), more than half of --lease (${settings.leaseMs} ms): ` +
        'lower --batch-size or --workers, or raise --lease',
    );
  }
  return settings;
}

async function rotate(
  ctx: CommandContext,
  session: Session,
  argv: RotateArgs,
  targets: ResolvedTarget[],
  settings: RotationSettings,
  stop: StopRequest,
  cryptoPool: CryptoPool | undefined,
) {
  if (targets.length === 0) {
    // Only --abandon-open-run with no target configured gets here (checkBeforeWriting).
    const runId = await abandonOpenRun(session.pool, session.schema, argv.reason);
    ctx.output.result({ status: runId === null ? 'nothing-to-do' : 'abandoned', runId }, () =>
      runId === null
        ? 'No rotation run is open, and no target is configured: nothing to do.'
        : `Abandoned rotation run ${runId}; no target is configured, so no rotation was started.`,
    );
    return ExitCode.OK;
  }
  const targetKeyId = argv.to ?? session.registry.find((k) => k.isPrimary)?.keyId;
  if (!targetKeyId) throw new UsageError('no primary key is registered — pass --to <key id> or run "pg-rekey keys promote <id>"');
  const targetVersion = requireActiveKey(session.registry, targetKeyId).version;
  if (settings.maxReplicaLagMs !== undefined) await assertReplicaLagReadable(session.pool);
  stop.signal.throwIfAborted();
  const transform = await createTransform(session, targets, { targetKeyId, targetVersion, encryptLegacy: argv.encryptLegacy }, cryptoPool);
  return rotateWith(ctx, session, argv, settings, stop, targetKeyId, targetVersion, targets, transform);
}

async function rotateWith(
  ctx: CommandContext,
  session: Session,
  argv: RotateArgs,
  settings: RotationSettings,
  stop: StopRequest,
  targetKeyId: string,
  targetVersion: number,
  targets: ResolvedTarget[],
  transform: BatchTransformer,
) {
  const { pool, schema, registry } = session;
  const primary = registry.find((k) => k.isPrimary);
  const batchSize = argv.batchSize;

  stop.signal.throwIfAborted();
  const open = await pool.query(`SELECT 1 FROM ${quoteIdent(schema)}.runs WHERE kind = 'rotate' AND status IN ('running', 'stopped')`);
  if (open.rowCount === 0) {
    let hasWork = false;
    for (const t of targets) {
      if (hasWork) break;
      stop.signal.throwIfAborted();
      // The first statement on the table itself: dropped or altered since it was checked, it is named (exit 2), not an internal error.
      const anyWork = await pool.query<{ hasWork: boolean }>(selectAnyWorkSql(t, targetVersion)).catch((err: unknown) => {
        throw asTargetChanged(err, t, 'rotate-start');
      });
      hasWork = anyWork.rows[0]!.hasWork;
    }
    if (!hasWork) {
      ctx.output.result({ status: 'nothing-to-do', targetKey: targetKeyId }, () => `Nothing to rotate: every value is already under key ${targetKeyId}.`);
      return ExitCode.OK;
    }
  }
  stop.signal.throwIfAborted();
  // Scheduled when the key being replaced had served its interval: the primary
  // when rotating before promoting, else the primary before it (the runbook
  // promotes the new key first, then rotates).
  const replaced = primary && primary.keyId !== targetKeyId ? primary : previousPrimary(registry, targetKeyId);
  const due = replaced?.promotedAt ? Date.now() - replaced.promotedAt.getTime() > session.config.rotationIntervalDays * 86_400_000 : false;
  const run = await startOrJoinRun(
    pool,
    schema,
    {
      targetKeyId,
      sourceKeyIds: session.keys.map((k) => k.id).filter((id) => id !== targetKeyId),
      columns: targets.flatMap((t) => t.columns.map((c) => `${t.name}.${c.name}`)),
      trigger: argv.emergency ? 'emergency' : due ? 'scheduled' : 'manual',
      reason: argv.reason,
      actor: session.actor,
      // The --target filters, so that the command given to resume or join the run (joinCommand) names the same columns.
      options: { batchSize, workers: argv.workers, onError: argv.onError, encryptLegacy: argv.encryptLegacy, target: argv.target },
      abandonOpenRun: argv.abandonOpenRun,
    },
    targets,
  );
  // The run is planned (or joined): a stop from here is taken at batch boundaries, leaving it resumable.
  session.endStartUp();
  ctx.output.info(`${run.joined ? 'Joined' : 'Started'} rotation run ${run.id} to key ${targetKeyId}.`);

  const ranges = (await pool.query<{ target: string; estimatedRows: number; examined: number }>(selectRangesSql(schema, run.id))).rows;
  const totals: Record<string, number> = {};
  for (const r of ranges) totals[r.target] = (totals[r.target] ?? 0) + Math.max(0, r.estimatedRows - r.examined);
  const progress = createProgressReporter({ totals, logger: ctx.logger, tty: canDrawOn(process.stderr), enabled: true });
  let outcome: RotationOutcome;
  try {
    outcome = await runRotation({
      pool,
      schema,
      runId: run.id,
      targetVersion,
      targets,
      transform,
      owner: `${hostname()}:${process.pid}`,
      signal: stop.signal,
      startedAt: stop.startedAt,
      logger: ctx.logger,
      onBatch: (p) => progress.add(p.target, p.examined),
      settings,
    });
  } finally {
    progress.stop();
  }
  ctx.output.result({ targetKey: targetKeyId, ...outcome }, () =>
    formatOutcome(targetKeyId, outcome, joinCommand(targetKeyId, { encryptLegacy: argv.encryptLegacy, onError: argv.onError, target: argv.target })),
  );
  switch (outcome.status) {
    case 'succeeded':
      // Rows an application kept rewriting under the rotation are still to do:
      // "not finished, run again", as for a stop.
      return outcome.conflicted > 0 ? ExitCode.STOPPED_RESUMABLE : ExitCode.OK;
    case 'stopped':
      return ExitCode.STOPPED_RESUMABLE;
    default:
      return ExitCode.FAILURES;
  }
}

/** The key promoted most recently before `targetKeyId` became the primary, if any. */
function previousPrimary(registry: readonly RegisteredKey[], targetKeyId: string): RegisteredKey | undefined {
  return registry
    .filter((k) => k.keyId !== targetKeyId && k.promotedAt !== null)
    .sort((a, b) => b.promotedAt!.getTime() - a.promotedAt!.getTime())[0];
}
