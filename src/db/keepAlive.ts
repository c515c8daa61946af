/**
 * TCP keepalive for pg-rekey's connections. Turning it on is not enough: the
 * first probe then waits for the kernel's default idle time, two hours on
 * Linux, while load balancers and NAT gateways forget an idle flow after a
 * few minutes (Azure's load balancer after 4, AWS's NAT gateway after 350 s)
 * and then drop its packets without a reset. A connection waiting on a long
 * statement — `migrate up`'s CREATE INDEX CONCURRENTLY on a big table, a
 * batch behind a lock — sends nothing meanwhile, and when the answer finally
 * comes it is dropped: the command waits for good. A probe every 30 s of
 * silence keeps such a flow alive, and tells a dead one within minutes.
 *
 * The URL's libpq settings win, as libpq reads them (node-postgres's
 * JavaScript client ignores them): `keepalives=0` turns keepalive off,
 * `keepalives_idle=N` probes after N s of silence (0: the kernel's default).
 */
import { libpqInteger, urlParamsOf } from './urlParams.js';

/** Seconds of silence before the first keepalive probe, unless the URL says otherwise. */
export const KEEPALIVE_IDLE_SECONDS = 30;

/** What node-postgres's Client takes: keepalive on or off, and its idle time (0: the kernel's). */
export interface KeepAliveSettings {
  keepAlive: boolean;
  keepAliveInitialDelayMillis: number;
}

/** The keepalive settings for `databaseUrl` (a connection string that is not a URL gets the defaults). */
export function keepAliveOf(databaseUrl: string): KeepAliveSettings {
  const params = urlParamsOf(databaseUrl) ?? new URLSearchParams();
  const enabled = libpqInteger(params, 'keepalives', '1 turns TCP keepalive on, 0 off');
  const idle = libpqInteger(params, 'keepalives_idle', "seconds of silence before a probe, 0 for the kernel's default");
  if (enabled === 0) return { keepAlive: false, keepAliveInitialDelayMillis: 0 };
  const seconds = idle === undefined ? KEEPALIVE_IDLE_SECONDS : Math.max(idle, 0);
  // Past a timer's range Node would misread it; no idle time is that long in practice.
  return { keepAlive: true, keepAliveInitialDelayMillis: Math.min(seconds * 1000, 2 ** 31 - 1) };
}
