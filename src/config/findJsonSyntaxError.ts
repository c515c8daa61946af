/**
 * Where a JSON text first breaks the grammar, as line and column. The config
 * file may hold a literal secret by mistake, and V8's JSON.parse message quotes
 * the text around the error (`Unexpected token 'O', ..."secret": OLDSECRETK"...`),
 * sometimes without any position: so the position comes from jsonc-parser's
 * error-tolerant parser (comments and trailing commas refused, as JSON.parse
 * does) and the text is never shown.
 */
import { parse, printParseErrorCode, type ParseError } from 'jsonc-parser';

/** A syntax error's place: 1-based line and column (in UTF-16 units), what is wrong, and whether the text ended early. */
export interface JsonSyntaxErrorPosition {
  line: number;
  column: number;
  /** jsonc-parser's error name in words, e.g. "comma expected" — never text of the file. */
  problem: string;
  atEnd: boolean;
}

/** The position of the first syntax error in `text`, or undefined when it finds none. */
export function findJsonSyntaxError(text: string): JsonSyntaxErrorPosition | undefined {
  const errors: ParseError[] = [];
  parse(text, errors, { disallowComments: true, allowTrailingComma: false, allowEmptyContent: false });
  const first = errors[0];
  if (!first) return undefined;
  const before = text.slice(0, first.offset);
  return {
    line: before.split('\n').length,
    column: first.offset - (before.lastIndexOf('\n') + 1) + 1,
    problem: printParseErrorCode(first.error).replace(/(?<=[a-z])(?=[A-Z])/g, ' ').toLowerCase(),
    atEnd: first.offset >= text.trimEnd().length,
  };
}

/** Where the JSON breaks, by line and column only; the file's text is never quoted. */
export function describeJsonSyntaxError(text: string): string {
  const at = findJsonSyntaxError(text);
  if (!at) return 'fix its syntax';
  const where = `line ${at.line}, column ${at.column}`;
  return at.atEnd
    ? `it ends early, at ${where} — close every string, object and array`
    : `${at.problem} at ${where} — fix it there (a missing comma or quote, a trailing comma, or an unquoted value?)`;
}
