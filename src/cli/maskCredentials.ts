/**
 * Hides passwords in text about to be printed. A database URL given in the
 * wrong place (as a positional: `pg-rekey status postgres://u:PW@host/db`)
 * comes back in yargs' "Unknown argument: …", and a driver message could
 * quote a connection string; either would put the password in a terminal,
 * a CI log or a ticket.
 */

// scheme://user:password@ — the password runs to the last @ of the token, so
// an unencoded @ in it is masked too (over-masking a query string is harmless).
const URL_PASSWORD = /([a-z][a-z0-9+.-]*:\/\/[^\s/:@]*):\S*@/gi;
// password=… in a query string (?password=…) or a key=value connection string.
const PASSWORD_PARAMETER = /(password\s*=\s*)[^\s&]+/gi;

/** `text` with every URL password and `password=` value replaced by `***`. */
export function maskCredentials(text: string): string {
  return text.replace(URL_PASSWORD, '$1:***@').replace(PASSWORD_PARAMETER, '$1***');
}
