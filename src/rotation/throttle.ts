import { setTimeout as sleep } from 'node:timers/promises';
import type { Queryable } from '../db/withTransaction.js';

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

/** Shared by the workers of one process: rate budget, pauses, replica lag. */
export class Throttle {
  #nextSlot = 0;
  constructor(
    private readonly options: ThrottleOptions,
    private readonly db: Queryable,
    private readonly shouldStop: ShouldStop,
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
      const { rows } = await this.db.query<{ lag: number | null }>(
        `SELECT max(extract(epoch FROM replay_lag) * 1000)::float8 AS lag FROM pg_catalog.pg_stat_replication`,
      );
      if ((rows[0]?.lag ?? 0) <= maxLagMs) return;
      await interruptibleSleep(1000, this.shouldStop);
    }
  }
}
