/**
 * Identifier quoting: the one place a name from config becomes SQL text.
 * Values always travel as parameters; identifiers cannot, so they are quoted
 * here and checked against pg_catalog (src/db/catalog.ts) before use.
 */

import { TargetError } from '../errors.js';

/** A schema-qualified relation name, as stored in pg_catalog (already case-folded). */
export interface QualifiedName {
  readonly schema: string;
  readonly name: string;
}

/** PostgreSQL silently truncates identifiers longer than NAMEDATALEN - 1 bytes. */
const MAX_IDENTIFIER_BYTES = 63;

/**
 * Quotes one identifier: wraps it in double quotes and doubles embedded ones,
 * so any name (mixed case, dots, spaces, quotes, keywords) refers to exactly
 * that object. Rejects what the server would not keep verbatim: an empty name,
 * a NUL byte, or one longer than 63 bytes (which the server would truncate
 * and so resolve to a different object than the one checked).
 */
export function quoteIdent(name: string): string {
  if (name.length === 0) throw new TargetError('an identifier must not be empty');
  if (name.includes('\0')) throw new TargetError('an identifier must not contain a NUL character');
  if (Buffer.byteLength(name, 'utf8') > MAX_IDENTIFIER_BYTES) {
    throw new TargetError(`identifier ${JSON.stringify(name)} is longer than ${MAX_IDENTIFIER_BYTES} bytes`);
  }
  return `"${name.replaceAll('"', '""')}"`;
}

/** `"schema"."name"`, both parts quoted. */
export function qualifiedName(qualified: QualifiedName): string {
  return `${quoteIdent(qualified.schema)}.${quoteIdent(qualified.name)}`;
}

/** One identifier as a human would write it in messages: quoted only where SQL needs it. */
export function formatIdent(part: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(part) ? part : `"${part.replaceAll('"', '""')}"`;
}

/** `schema.name` as a human would write it in messages (see formatIdent). */
export function formatQualifiedName(qualified: QualifiedName): string {
  return `${formatIdent(qualified.schema)}.${formatIdent(qualified.name)}`;
}

/**
 * Parses `table`, `schema.table`, or either part double-quoted
 * (`public."we""ird.name"`), with the server's rules: unquoted parts have
 * their ASCII letters folded to lower case, quoted parts are taken verbatim
 * with `""` meaning `"`, a dot separates parts only outside quotes. The schema defaults to `public` (not
 * the search_path: a rotation must not change target with a role's settings).
 */
export function parseQualifiedName(text: string, defaultSchema = 'public'): QualifiedName {
  const parts: string[] = [];
  let i = 0;
  const fail = (why: string): never => {
    throw new TargetError(`${JSON.stringify(text)} is not a valid [schema.]table name: ${why}`);
  };
  while (i <= text.length) {
    let part = '';
    if (text[i] === '"') {
      i++;
      for (;;) {
        if (i >= text.length) fail('unterminated quoted identifier');
        if (text[i] === '"') {
          if (text[i + 1] === '"') {
            part += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        part += text[i];
        i++;
      }
      if (part.length === 0) fail('empty quoted identifier');
    } else {
      const start = i;
      while (i < text.length && text[i] !== '.') {
        if (text[i] === '"') fail('a quote inside an unquoted name');
        i++;
      }
      // Only A–Z: in a UTF-8 database the server leaves every other letter of
      // an unquoted name as written (Ärger stays "Ärger"), and so must we, or
      // we would resolve a different table ("ärger") than psql does.
      part = text.slice(start, i).trim().replace(/[A-Z]/g, (c) => c.toLowerCase());
      if (part.length === 0) fail('empty name part');
      if (/\s/.test(part)) fail('whitespace inside an unquoted name (quote it)');
    }
    parts.push(part);
    if (i === text.length) break;
    if (text[i] !== '.') fail('expected "." after a quoted identifier');
    i++;
    if (i === text.length) fail('trailing "."');
  }
  if (parts.length > 2) fail('more than two parts');
  const [first, second] = parts;
  if (first === undefined) return fail('empty name');
  const result = second === undefined ? { schema: defaultSchema, name: first } : { schema: first, name: second };
  quoteIdent(result.schema); // same limits as quoting: NUL, length
  quoteIdent(result.name);
  return result;
}
