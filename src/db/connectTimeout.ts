/**
 * The connect timeout a database URL asks for. libpq's `connect_timeout`
 * (seconds) is the standard way to set it, and DBAs put it in their URLs, but
 * node-postgres's JavaScript client ignores it: without this, a URL's
 * `?connect_timeout=3` silently meant pg-rekey's own 10 s.
 *
 * libpq's rules: a decimal integer; zero or negative waits indefinitely;
 * 1 means 2 (its minimum). Anything else is refused, as libpq refuses it,
 * rather than guessed at.
 */
import { libpqInteger, urlParamsOf } from './urlParams.js';

/** libpq's smallest connect_timeout, in seconds: it reads 1 as 2. */
const LIBPQ_MIN_SECONDS = 2;

/**
 * The URL's connect_timeout in milliseconds (0: wait indefinitely), or
 * undefined when the URL gives none (or is not a URL: pg then reads it as it
 * can, and the default applies).
 */
export function connectTimeoutOf(databaseUrl: string): number | undefined {
  const params = urlParamsOf(databaseUrl);
  const seconds = params && libpqInteger(params, 'connect_timeout', 'seconds; 0 waits indefinitely');
  if (seconds === undefined) return undefined;
  if (seconds <= 0) return 0;
  // Past a timer's range (about 24 days) Node would fire it at once.
  return Math.min(Math.max(seconds, LIBPQ_MIN_SECONDS) * 1000, 2 ** 31 - 1);
}
