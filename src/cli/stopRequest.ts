import type { Logger } from 'pino';

/** The longest delay setTimeout honours (about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** A long command's stop request: SIGTERM, SIGINT or its --max-duration deadline. */
export interface StopRequest {
  /** Aborted on the first SIGTERM or SIGINT, or when the deadline passes. */
  readonly signal: AbortSignal;
  /** When the clock of --max-duration started (epoch ms). */
  readonly startedAt: number;
  /** Removes the signal handlers and the deadline timer. */
  dispose(): void;
}

/**
 * Starts watching for a stop. Created first thing in a command, so a signal
 * during its start-up (key derivation, target checks, lock waits, planning)
 * stops it cleanly rather than killing the process, and --max-duration counts
 * the start-up too. A second signal finds no handler and kills the process: the
 * way out when a clean stop takes too long.
 */
export function watchForStop(logger: Logger, maxDurationMs: number | undefined): StopRequest {
  const controller = new AbortController();
  const startedAt = Date.now();
  const onSignal = (signal: NodeJS.Signals) => {
    logger.warn({ signal }, 'stop requested: stopping at the next clean boundary');
    controller.abort(new Error(`stopped by ${signal}`));
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  // unref: the deadline alone must not keep a finished process alive. A delay
  // beyond setTimeout's limit would fire at once; the rotation's own deadline
  // check (from startedAt) covers such a long one.
  const timer =
    maxDurationMs === undefined || maxDurationMs > MAX_TIMER_MS
      ? undefined
      : setTimeout(() => {
          logger.info({ maxDurationMs }, '--max-duration reached: stopping at the next clean boundary');
          controller.abort(new Error('stopped at --max-duration'));
        }, maxDurationMs).unref();
  return {
    signal: controller.signal,
    startedAt,
    dispose() {
      clearTimeout(timer);
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    },
  };
}
