/**
 * Closing a pool's connections that stop answering: a network path that
 * black-holes (a NAT, firewall or load balancer silently dropping the flow)
 * sends no RST, so a statement waiting for its answer would wait for ever —
 * TCP keepalive and retransmission give up only after many minutes, or hours
 * with the kernel's defaults — and so would a stop (SIGTERM, --max-duration),
 * which is taken between statements, and whose cancel request needs a new
 * connection over the same dead path.
 */
import type { Socket } from 'node:net';
import type pg from 'pg';

/** Closes checked-out connections silent for too long, until `detach()`. */
export interface SilenceWatch {
  detach(): void;
}

/** The longest delay a socket timeout takes (Node's timers); beyond it there is no watch. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** What the statement in flight fails with: a connection error (ETIMEDOUT), so it is retried on a fresh connection. */
function silenceError(silentMs: number): Error {
  const error = new Error(
    `the database server did not answer for ${Math.round(silentMs / 1000)} s, so the connection was closed ` +
      '(a network path that drops packets, or a stopped server); what was committed is kept',
  );
  return Object.assign(error, { code: 'ETIMEDOUT' });
}

const socketOf = (client: pg.PoolClient) => (client as unknown as { connection?: { stream?: Socket } }).connection?.stream;

/**
 * The watch itself: the socket of each checked-out client gets an idle timeout
 * of `silentMs` once `arm()` is called (at once if `armed`); on it, the socket
 * is destroyed, its statement fails with silenceError, and the pool drops the
 * client. Released clients are not watched: they idle in the pool legitimately.
 */
function watchSilence(pool: pg.Pool, silentMs: number, armed: boolean): SilenceWatch & { arm(): void } {
  const busy = new Set<Socket>();
  // One 'timeout' listener per socket (setTimeout's callback would add one at every checkout).
  const listening = new WeakSet<Socket>();
  const onAcquire = (client: pg.PoolClient) => {
    const socket = socketOf(client);
    if (!socket) return;
    if (!listening.has(socket)) {
      listening.add(socket);
      socket.on('timeout', () => {
        if (armed && busy.has(socket)) socket.destroy(silenceError(silentMs));
      });
    }
    busy.add(socket);
    if (armed) socket.setTimeout(silentMs);
  };
  const unwatch = (client: pg.PoolClient) => {
    const socket = socketOf(client);
    if (!socket || !busy.delete(socket)) return;
    socket.setTimeout(0);
  };
  const onRelease = (_err: Error | undefined, client: pg.PoolClient) => unwatch(client);
  pool.on('acquire', onAcquire);
  pool.on('release', onRelease);
  pool.on('remove', unwatch);
  return {
    arm() {
      armed = true;
      for (const socket of busy) socket.setTimeout(silentMs);
    },
    detach() {
      pool.off('acquire', onAcquire);
      pool.off('release', onRelease);
      pool.off('remove', unwatch);
      for (const socket of busy) socket.setTimeout(0);
      busy.clear();
      armed = false;
    },
  };
}

/**
 * While attached, a connection of `pool` that is checked out and exchanges no
 * byte with the server for `silentMs` is closed: its statement fails as a
 * connection error (the rotation retries it on a fresh connection, or stops
 * there when a stop is requested), and the pool drops it. Only for statements
 * the server itself bounds below `silentMs` (a statement_timeout): a statement
 * that may legitimately run longer must not be watched. No watch when
 * `silentMs` is undefined or beyond a timer's range.
 */
export function closeSilentConnections(pool: pg.Pool, silentMs: number | undefined): SilenceWatch {
  if (silentMs === undefined || silentMs > MAX_TIMER_MS) return { detach() {} };
  return watchSilence(pool, silentMs, true);
}

/**
 * Once `signal` aborts (a stop was requested), a connection of `pool` checked
 * out then or later that stays silent for `silentMs` is closed, as above: a
 * stop then ends the command in bounded time even when the network path is
 * dead, whatever statement it was waiting on. Before the stop nothing is
 * watched, so a statement may run as long as it legitimately takes.
 */
export function closeSilentConnectionsOnStop(pool: pg.Pool, signal: AbortSignal, silentMs: number): SilenceWatch {
  const watch = watchSilence(pool, silentMs, false);
  const onAbort = () => watch.arm();
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
  return {
    detach() {
      signal.removeEventListener('abort', onAbort);
      watch.detach();
    },
  };
}
