import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Queryable } from '../db/withTransaction.js';
import { UsageError } from '../errors.js';

/** Limits on how hard a rotation may push the database. */
export interface ThrottleOptions {
  /** Rows per second across all workers of this process. */
  maxRate?: number | undefined;
  /** A pause after each batch. */
  pauseMs?: number | undefined;
  /** Wait while any streaming replica's replay lag exceeds this. */
  maxReplicaLagMs?: number | undefined;
}

/** Tells a waiting worker to give up early (stop requested, time is up). */
export type ShouldStop = () => boolean;

const POLL_MS = 250;

/** Sleeps `ms` in short slices so a stop request is noticed promptly. */
export async function interruptibleSleep(ms: number, shouldStop: ShouldStop): Promise<void> {
  const until = Date.now() + ms;
  while (!shouldStop() && Date.now() < until) await sleep(Math.min(POLL_MS, until - Date.now()));
}

/**
 * Refuses --max-replica-lag for a role that cannot read the replicas' lag:
 * pg_stat_replication shows it only to superusers and members of
 * pg_read_all_stats (pg_monitor includes it); to anyone else it reads as no
 * lag at all, and the throttle would silently never wait.
 */
export async function assertReplicaLagReadable(db: Queryable): Promise<void> {
  const { rows } = await db.query<{ readable: boolean }>(
    `SELECT pg_catalog.pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS readable`,
  );
  if (rows[0]?.readable !== true) {
    throw new UsageError(
      '--max-replica-lag: this database role cannot read replication lag (pg_stat_replication); ' +
        'GRANT pg_monitor (or pg_read_all_stats) to it, or run without --max-replica-lag',
    );
  }
}

/** Shared by the workers of one process: rate budget, pauses, replica lag. */
export class Throttle {
  #nextSlot = 0;
  /** When the workers started waiting for the replicas (logged once per wait, not per worker). */
  #waitingSince: number | undefined;
  constructor(
    private readonly options: ThrottleOptions,
    private readonly db: Queryable,
    private readonly shouldStop: ShouldStop,
    private readonly logger?: Logger,
  ) {}

  /** Waits before a batch: replica lag first, then the rate budget. */
  async beforeBatch(): Promise<void> {
    if (this.options.maxReplicaLagMs !== undefined) await this.#waitForReplicas(this.options.maxReplicaLagMs);
    const wait = this.#nextSlot - Date.now();
    if (wait > 0) await interruptibleSleep(wait, this.shouldStop);
  }

  /** Accounts for a batch of `rows` just processed, then pauses if asked to. */
  async afterBatch(rows: number): Promise<void> {
    if (this.options.maxRate !== undefined && this.options.maxRate > 0) {
      this.#nextSlot = Math.max(this.#nextSlot, Date.now()) + (rows / this.options.maxRate) * 1000;
    }
    if (this.options.pauseMs) await interruptibleSleep(this.options.pauseMs, this.shouldStop);
  }

  async #waitForReplicas(maxLagMs: number): Promise<void> {
    while (!this.shouldStop()) {
      // replay_lag grows while a replica's replay is stuck (the primary
      // interpolates from its own WAL timestamps) and is NULL once it is idle and caught up.
      const { rows } = await this.db.query<{ lag: number | null }>(
        `SELECT max(extract(epoch FROM replay_lag) * 1000)::float8 AS lag FROM pg_catalog.pg_stat_replication`,
      );
      const lagMs = rows[0]?.lag ?? 0;
      if (lagMs <= maxLagMs) {
        if (this.#waitingSince !== undefined) {
          this.logger?.info({ replicaLagMs: Math.round(lagMs), waitedMs: Date.now() - this.#waitingSince }, 'replicas caught up: rotating again');
          this.#waitingSince = undefined;
        }
        return;
      }
      if (this.#waitingSince === undefined) {
        this.#waitingSince = Date.now();
        this.logger?.warn({ replicaLagMs: Math.round(lagMs), maxReplicaLagMs: maxLagMs }, 'a replica lags more than --max-replica-lag: waiting');
      }
      await interruptibleSleep(1000, this.shouldStop);
    }
  }
}
