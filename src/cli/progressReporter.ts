import cliProgress from 'cli-progress';
import type { Logger } from 'pino';

/** Shows rotation progress: bars on a terminal, else one JSON log line per second per target. */
export interface ProgressReporter {
  add(target: string, rows: number): void;
  stop(): void;
}

/** Builds the reporter for this terminal; `totals` are planner estimates per target. */
export function createProgressReporter(options: {
  totals: Record<string, number>;
  logger: Logger;
  tty: boolean;
  enabled: boolean;
}): ProgressReporter {
  const done: Record<string, number> = Object.fromEntries(Object.keys(options.totals).map((t) => [t, 0]));
  const started = Date.now();
  if (!options.enabled) return { add: () => undefined, stop: () => undefined };
  if (options.tty) {
    const multibar = new cliProgress.MultiBar(
      {
        format: ' {target} |{bar}| {value}/{total} rows · {rate} rows/s · ETA {eta_formatted}',
        stream: process.stderr,
        hideCursor: true,
        clearOnComplete: false,
      },
      cliProgress.Presets.shades_classic,
    );
    const bars = new Map(
      Object.entries(options.totals).map(([target, total]) => [target, multibar.create(Math.max(1, total), 0, { target, rate: 0 })]),
    );
    return {
      add(target, rows) {
        done[target] = (done[target] ?? 0) + rows;
        const bar = bars.get(target);
        const rate = Math.round(done[target]! / Math.max(0.001, (Date.now() - started) / 1000));
        // Estimates can be low: grow the total rather than overflow the bar.
        if (bar && done[target]! > bar.getTotal()) bar.setTotal(done[target]!);
        bar?.update(done[target]!, { target, rate });
      },
      stop: () => multibar.stop(),
    };
  }
  let lastLog = 0;
  const log = () => {
    for (const [target, rows] of Object.entries(done)) {
      const elapsed = (Date.now() - started) / 1000;
      const rate = rows / Math.max(0.001, elapsed);
      const total = options.totals[target] ?? 0;
      options.logger.info(
        { target, rows, estimatedTotal: total, rate: Math.round(rate), etaSeconds: rate > 0 ? Math.max(0, Math.round((total - rows) / rate)) : null },
        'progress',
      );
    }
  };
  return {
    add(target, rows) {
      done[target] = (done[target] ?? 0) + rows;
      if (Date.now() - lastLog >= 1000) {
        lastLog = Date.now();
        log();
      }
    },
    stop: log,
  };
}
