/**
 * A doorbell for the range workers of one process. A worker that finds no
 * range to claim while others are still open waits for them to end: ranges
 * held by other processes can only be polled, but a range of this process
 * rings here when it ends, so an idle worker looks again at once instead of
 * sleeping out its poll interval (which added up to a second to every run).
 */
export class Wakeup {
  readonly #waiters = new Set<() => void>();

  /** Wakes every worker waiting now. */
  ring(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const wake of waiters) wake();
  }

  /** Resolves at the next ring(), when `signal` aborts, or after `ms`, whichever comes first. */
  wait(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        this.#waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal?.addEventListener('abort', done, { once: true });
      this.#waiters.add(done);
    });
  }
}
