/**
 * The range workers' doorbell: an idle worker waiting for ranges to end wakes
 * when a range of this process ends (ring), on a stop (abort), or at its poll
 * interval. Fake timers make "before the interval" exact.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Wakeup } from '../../src/rotation/wakeup.js';

/** Whether `promise` has settled, after letting pending callbacks run. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  void promise.then(() => (done = true));
  await Promise.resolve();
  await Promise.resolve();
  return done;
}

describe('Wakeup', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('wakes every waiting worker at ring(), long before the poll interval', async () => {
    const wakeup = new Wakeup();
    const first = wakeup.wait(1000);
    const second = wakeup.wait(1000);
    expect(await settled(first)).toBe(false);
    wakeup.ring();
    expect(await settled(first)).toBe(true);
    expect(await settled(second)).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('without a ring, waits out the poll interval', async () => {
    const wakeup = new Wakeup();
    const waiting = wakeup.wait(1000);
    await vi.advanceTimersByTimeAsync(999);
    expect(await settled(waiting)).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(await settled(waiting)).toBe(true);
  });

  it('a ring wakes only the workers waiting then', async () => {
    const wakeup = new Wakeup();
    wakeup.ring();
    const later = wakeup.wait(1000);
    expect(await settled(later)).toBe(false);
    await vi.advanceTimersByTimeAsync(1000);
    expect(await settled(later)).toBe(true);
  });

  it('a stop (abort) wakes a waiting worker, and an earlier one does not wait at all', async () => {
    const wakeup = new Wakeup();
    const stop = new AbortController();
    const waiting = wakeup.wait(1000, stop.signal);
    stop.abort();
    expect(await settled(waiting)).toBe(true);
    expect(await settled(wakeup.wait(1000, stop.signal))).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
  });
});
