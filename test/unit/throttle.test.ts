/**
 * The throttle between batches: --pause-ms waits after each batch, --max-rate
 * spaces batches so rows per second stay under the limit (shared by the
 * workers of a process), and a stop request cuts either wait short. Only lower
 * bounds on waits are asserted (a loaded machine may wait longer, never less);
 * the replica-lag wait is tested against a real replica (rotateReplicaLag).
 */
import { describe, expect, it } from 'vitest';
import { Throttle } from '../../src/rotation/throttle.js';

const noDatabase = {
  query: () => {
    throw new Error('no replica check was asked for');
  },
} as never;

const elapsed = async (fn: () => Promise<void>) => {
  const started = performance.now();
  await fn();
  return performance.now() - started;
};

describe('Throttle', () => {
  it('--pause-ms pauses after every batch', async () => {
    const throttle = new Throttle({ pauseMs: 120 }, noDatabase, () => false);
    expect(await elapsed(() => throttle.afterBatch(500))).toBeGreaterThanOrEqual(115);
    expect(await elapsed(() => throttle.beforeBatch())).toBeLessThan(100);
  });

  it('--max-rate holds the next batch back until the rows done fit the rate', async () => {
    const throttle = new Throttle({ maxRate: 1000 }, noDatabase, () => false);
    await throttle.beforeBatch();
    await throttle.afterBatch(200); // 200 rows at 1,000 rows/s: the next batch not before 200 ms
    expect(await elapsed(() => throttle.beforeBatch())).toBeGreaterThanOrEqual(190);
    // Two workers' batches accumulate: 300 more rows, 300 ms more.
    await throttle.afterBatch(150);
    await throttle.afterBatch(150);
    expect(await elapsed(() => throttle.beforeBatch())).toBeGreaterThanOrEqual(290);
  });

  it('a stop request cuts a wait short', async () => {
    let stop = false;
    const throttle = new Throttle({ pauseMs: 60_000, maxRate: 1 }, noDatabase, () => stop);
    setTimeout(() => (stop = true), 50);
    expect(await elapsed(() => throttle.afterBatch(1000))).toBeLessThan(5_000);
    expect(await elapsed(() => throttle.beforeBatch())).toBeLessThan(5_000);
  });
});
