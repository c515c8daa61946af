/**
 * The one shape every SQL statement takes in pg-rekey: a named function builds
 * it, pg runs it. Keeping text and values together means no call site ever
 * concatenates a value into SQL; identifiers are the only thing spliced into
 * `text`, and only after `quoteIdent` (src/db/quote.ts).
 */

/** A parameterised statement, ready for `client.query(sql)` (pg's QueryConfig shape). */
export interface Sql {
  /** Statement text with `$1…$n` placeholders; identifiers already quoted. */
  readonly text: string;
  /** Parameter values, in placeholder order. Never key material (DESIGN §3). */
  readonly values: unknown[];
}

/** Builds a `Sql`; a tiny helper so statement functions read uniformly. */
export function sql(text: string, values: unknown[] = []): Sql {
  return { text, values };
}
