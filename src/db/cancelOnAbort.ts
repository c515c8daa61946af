/**
 * Cancelling a pool's statements when a stop is requested, so a statement
 * waiting for a lock (or scanning a big table) does not hold the stop up.
 */
import type pg from 'pg';

/** While attached, a stop cancels the pool's running statements; `detach` ends that. */
export interface StatementCanceller {
  /** From now on a stop no longer cancels statements (e.g. batches that must finish cleanly). */
  detach(): void;
}

// A statement checked out just before the abort may reach the server just
// after the cancel: cancelling again while any is still running closes that gap.
const RECANCEL_EVERY_MS = 500;

/**
 * When `signal` aborts, cancels the statement every checked-out connection of
 * `pool` is running (pg_cancel_backend: it fails with SQLSTATE 57014, and a
 * transaction it was in rolls back), and again every 500 ms while one is still
 * checked out, until `detach()`. Attach it before the pool's first query: it
 * knows the connections from their checkouts. pg_cancel_backend needs the same
 * role as the cancelled session, which the pool's own connections have.
 */
export function cancelStatementsOnAbort(pool: pg.Pool, signal: AbortSignal): StatementCanceller {
  const busy = new Set<pg.PoolClient>();
  let attached = true;
  let timer: NodeJS.Timeout | undefined;
  const onAcquire = (client: pg.PoolClient) => busy.add(client);
  const onRelease = (_err: Error | undefined, client: pg.PoolClient) => busy.delete(client);
  // pg-pool emits 'remove' when a broken client is dropped instead of released.
  const onRemove = (client: pg.PoolClient) => busy.delete(client);
  pool.on('acquire', onAcquire);
  pool.on('release', onRelease);
  pool.on('remove', onRemove);

  const cancelBusy = async (): Promise<void> => {
    const pids = [...busy].map((c) => (c as unknown as { processID?: number }).processID).filter((pid): pid is number => typeof pid === 'number');
    if (!attached || pids.length === 0) return;
    const canceller = await pool.connect();
    // Checked out like any other: not to be cancelled itself.
    busy.delete(canceller);
    try {
      await canceller.query('SELECT pg_cancel_backend(pid) FROM pg_catalog.unnest($1::int[]) AS pid', [pids]);
    } finally {
      canceller.release();
    }
  };
  const cancelUntilIdle = () => {
    if (!attached) return;
    // Best effort: if the cancel cannot be sent, the statement ends on its own.
    void cancelBusy().catch(() => undefined);
    timer = setTimeout(cancelUntilIdle, RECANCEL_EVERY_MS);
    timer.unref();
  };
  const onAbort = () => cancelUntilIdle();
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });

  return {
    detach() {
      attached = false;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      pool.off('acquire', onAcquire);
      pool.off('release', onRelease);
      pool.off('remove', onRemove);
    },
  };
}
