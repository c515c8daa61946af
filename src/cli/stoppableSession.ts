/**
 * A database command that a signal (or --max-duration) stops cleanly at any
 * point. The stop is watched from before the session opens, so one during the
 * start-up (key derivation, target checks, lock waits, planning) cancels the
 * running statement and the command exits 75 having changed nothing; after
 * the start-up the command takes the stop at its own boundaries (batches,
 * pages) through the StopRequest it is given.
 */
import type { CommandContext } from './context.js';
import { ExitCode, type ExitCodeValue } from './exitCodes.js';
import { isStopDuringStartUp, withSession, type Session, type SessionOptions } from './session.js';
import { watchForStop, type StopRequest } from './stopRequest.js';

/** Runs `fn` in a session, stoppable as above; a stop during the start-up is reported by `reportStartUpStop`, then exit 75. */
export async function withStoppableSession<Checked>(
  ctx: CommandContext,
  maxDurationMs: number | undefined,
  options: SessionOptions<Checked>,
  fn: (session: Session, checked: Checked, stop: StopRequest) => Promise<ExitCodeValue>,
  reportStartUpStop: () => void,
): Promise<ExitCodeValue> {
  const stop = watchForStop(ctx.logger, maxDurationMs);
  try {
    return await withSession(ctx, { ...options, stopSignal: stop.signal }, (session, checked) => fn(session, checked, stop));
  } catch (err) {
    if (!isStopDuringStartUp(err, stop.signal)) throw err;
    reportStartUpStop();
    return ExitCode.STOPPED_RESUMABLE;
  } finally {
    stop.dispose();
  }
}
