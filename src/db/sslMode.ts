/**
 * node-postgres reads a URL's `sslmode=prefer`, `require` and `verify-ca`
 * as `verify-full`: it checks the server's certificate and host name, where
 * libpq's `require` only encrypts. It says so on every connection string that
 * uses them, with an eight-line SECURITY WARNING on stderr — in every cron
 * mail and deploy log, about a library the reader never chose. pg-rekey
 * spells those modes `verify-full` before handing the URL over: the same
 * connection, the same checks, no warning. The difference from libpq is told
 * where it matters, when a certificate check fails (session.ts), with both
 * ways out: `sslrootcert=` naming the CA, or `uselibpqcompat=true` for
 * libpq's meaning.
 */

import { urlParamsOf } from './urlParams.js';

/** The modes node-postgres checks as verify-full unless the URL asks for libpq's meaning. */
const CHECKED_AS_VERIFY_FULL = /([?&]sslmode=)(prefer|require|verify-ca)(?=&|#|$)/;

/** `databaseUrl` with its sslmode spelled as node-postgres applies it. Only that parameter's text changes. */
export function withSslModeAsApplied(databaseUrl: string): string {
  const params = urlParamsOf(databaseUrl);
  if (params === undefined || params.get('uselibpqcompat') === 'true') return databaseUrl;
  return databaseUrl.replace(CHECKED_AS_VERIFY_FULL, '$1verify-full');
}
