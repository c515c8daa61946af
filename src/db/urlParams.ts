/**
 * The libpq parameters of a database URL that pg-rekey reads itself, because
 * node-postgres's JavaScript client ignores them (connect_timeout,
 * keepalives, keepalives_idle) or reads them its own way (sslmode).
 */
import { UsageError } from '../errors.js';

/** The URL's query parameters, or undefined for a connection string that is not a URL (pg then reads it as it can). */
export function urlParamsOf(databaseUrl: string): URLSearchParams | undefined {
  try {
    return new URL(databaseUrl).searchParams;
  } catch {
    return undefined;
  }
}

/**
 * An integer parameter by libpq's rule (a decimal whole number, signed,
 * spaces around allowed), or undefined when absent. Anything else is refused,
 * as libpq refuses it, rather than guessed at; the message names the
 * parameter and its value, never the URL (it may hold a password).
 */
export function libpqInteger(params: URLSearchParams, name: string, meaning: string): number | undefined {
  const text = params.get(name);
  if (text === null) return undefined;
  if (!/^\s*[-+]?\d+\s*$/.test(text)) {
    throw new UsageError(`${name}=${text} in the database URL is not a whole number (libpq's rule; ${meaning})`);
  }
  return Number(text);
}
