/**
 * `rotate --dry-run`: reads and decrypts every value to be rotated and writes
 * nothing at all — no data, no checkpoints, no failures rows — then reports
 * what would change per column and source key, and what would fail.
 */
import { UsageError } from '../../errors.js';
import type { CryptoPool } from '../../rotation/cryptoPool.js';
import { dryRunTarget, type DryRunTargetReport } from '../../rotation/dryRun.js';
import type { RotationSettings } from '../../rotation/rotate.js';
import { Throttle } from '../../rotation/throttle.js';
import type { ResolvedTarget } from '../../schema/resolveTarget.js';
import type { CommandContext } from '../context.js';
import { ExitCode } from '../exitCodes.js';
import type { ChosenTargets, Session, SessionOptions } from '../session.js';
import { withStoppableSession } from '../stoppableSession.js';
import type { RotateArgs } from './rotate.js';
import { formatDryRun } from './rotateReport.js';
import { createTransform } from './rotateTransform.js';

/** The options a dry run reads. */
type DryRunArgs = Pick<RotateArgs, 'to' | 'batchSize' | 'encryptLegacy'>;

/**
 * A dry run, stopped by a signal or --max-duration like a rotation: between
 * batches (exit 75, with the counts of the rows read so far, marked as
 * partial), or during its start-up. Before, a SIGTERM from a deploy tool
 * killed it (exit 143) and --max-duration was ignored.
 */
export function dryRunUntilStopped(
  ctx: CommandContext,
  argv: DryRunArgs,
  settings: RotationSettings,
  sessionOptions: SessionOptions<ChosenTargets>,
  cryptoPool: CryptoPool | undefined,
) {
  return withStoppableSession(
    ctx,
    settings.maxDurationMs,
    sessionOptions,
    (session, { targets }, stop) => dryRun(ctx, session, argv, targets, settings, cryptoPool, stop.signal),
    () =>
      ctx.output.result(
        { dryRun: true, status: 'stopped', targetKey: null, targets: [] },
        () => 'Dry run stopped during start-up: nothing was read or written. Run it again for the report.',
      ),
  );
}

// Key versions start at 1: a target key not registered yet matches no row.
const UNREGISTERED_VERSION = 0;

/** `rotate --dry-run`: what would change, per column and source key, and what would fail. */
async function dryRun(
  ctx: CommandContext,
  session: Session,
  argv: DryRunArgs,
  targets: ResolvedTarget[],
  settings: RotationSettings,
  cryptoPool: CryptoPool | undefined,
  stop: AbortSignal,
) {
  const targetKeyId = argv.to ?? session.registry.find((k) => k.isPrimary)?.keyId ?? session.keys[0]!.id;
  const registered = session.registry.find((k) => k.keyId === targetKeyId);
  if (registered?.state === 'retired') throw new UsageError(`key ${targetKeyId} is retired and can no longer be used`);
  const version = registered?.version ?? UNREGISTERED_VERSION;
  const transform = await createTransform(session, targets, { targetKeyId, targetVersion: version, encryptLegacy: argv.encryptLegacy }, cryptoPool);
  stop.throwIfAborted();
  // From here a stop is taken between batches, like a rotation's, so the counts so far can be reported.
  session.endStartUp();
  ctx.output.info(`Dry run to key ${targetKeyId}: reading ${targets.map((t) => t.name).join(', ')}; nothing will be written.`);
  // Rehearsed on a busy primary with the real run's options, its reads are
  // paced as the rotation's batches would be. --max-replica-lag is left out:
  // a dry run writes nothing, so it adds no replication lag to wait for.
  const throttle = new Throttle({ maxRate: settings.maxRate, pauseMs: settings.pauseMs }, session.pool, () => stop.aborted, ctx.logger);
  if (settings.maxReplicaLagMs !== undefined) ctx.output.info('--max-replica-lag does not apply to a dry run: it writes nothing, so it adds no replication lag.');
  const reports: DryRunTargetReport[] = [];
  for (const t of targets) {
    if (stop.aborted) break;
    reports.push(await dryRunTarget(session.pool, t, version, argv.batchSize, transform, stop, undefined, throttle));
  }
  const notRead = targets.slice(reports.length).map((t) => t.name);
  const stopped = notRead.length > 0 || reports.some((r) => !r.complete);
  const failures = reports.reduce((n, r) => n + r.failures.length, 0);
  const why = stopped ? (stop.reason as Error).message : null;
  ctx.output.result({ dryRun: true, status: stopped ? 'stopped' : 'complete', targetKey: targetKeyId, targets: reports, notRead }, () =>
    formatDryRun(targetKeyId, reports, why === null ? null : { why, notRead }),
  );
  if (stopped) return ExitCode.STOPPED_RESUMABLE;
  return failures > 0 ? ExitCode.FAILURES : ExitCode.OK;
}

