/**
 * Where a JSON text first breaks the grammar, as line and column. The config
 * file may hold a literal secret by mistake, and V8's JSON.parse message quotes
 * the text around the error (`Unexpected token 'O', ..."secret": OLDSECRETK"...`),
 * sometimes without any position: so the position is found here and the text
 * is never shown. Follows RFC 8259, as JSON.parse does.
 */

/** A syntax error's place: 1-based line and column (in UTF-16 units), and whether the text ended early. */
export interface JsonSyntaxErrorPosition {
  line: number;
  column: number;
  atEnd: boolean;
}

class SyntaxStop {
  constructor(readonly offset: number) {}
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

/** The position of the first syntax error in `text`, or undefined when it is valid JSON. */
export function findJsonSyntaxError(text: string): JsonSyntaxErrorPosition | undefined {
  let i = 0;
  const fail = (): never => {
    throw new SyntaxStop(i);
  };
  const skipSpace = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const expect = (char: string) => {
    if (text[i] !== char) fail();
    i++;
  };
  const literal = (word: string) => {
    for (const char of word) expect(char);
  };
  const string = () => {
    expect('"');
    for (;;) {
      const char = text[i];
      if (char === undefined || char.charCodeAt(0) < 0x20) fail();
      if (char === '"') {
        i++;
        return;
      }
      if (char === '\\') {
        i++;
        if (text[i] === 'u') {
          i++;
          for (let n = 0; n < 4; n++) {
            if (!/[0-9a-fA-F]/.test(text[i] ?? '')) fail();
            i++;
          }
        } else {
          if (!'"\\/bfnrt'.includes(text[i] ?? 'x')) fail();
          i++;
        }
      } else {
        i++;
      }
    }
  };
  const value = (): void => {
    skipSpace();
    const char = text[i];
    if (char === '{') {
      i++;
      skipSpace();
      if (text[i] === '}') {
        i++;
        return;
      }
      for (;;) {
        skipSpace();
        string();
        skipSpace();
        expect(':');
        value();
        skipSpace();
        if (text[i] === '}') {
          i++;
          return;
        }
        expect(',');
      }
    }
    if (char === '[') {
      i++;
      skipSpace();
      if (text[i] === ']') {
        i++;
        return;
      }
      for (;;) {
        value();
        skipSpace();
        if (text[i] === ']') {
          i++;
          return;
        }
        expect(',');
      }
    }
    if (char === '"') return string();
    if (char === 't') return literal('true');
    if (char === 'f') return literal('false');
    if (char === 'n') return literal('null');
    NUMBER.lastIndex = i;
    if (!NUMBER.test(text)) fail();
    i = NUMBER.lastIndex;
  };
  try {
    value();
    skipSpace();
    if (i < text.length) fail();
    return undefined;
  } catch (stop) {
    if (!(stop instanceof SyntaxStop)) throw stop;
    const before = text.slice(0, stop.offset);
    const line = before.split('\n').length;
    const column = stop.offset - (before.lastIndexOf('\n') + 1) + 1;
    return { line, column, atEnd: stop.offset >= text.length };
  }
}

/** Where the JSON breaks, by line and column only; the file's text is never quoted. */
export function describeJsonSyntaxError(text: string): string {
  const at = findJsonSyntaxError(text);
  if (!at) return 'fix its syntax';
  const where = `line ${at.line}, column ${at.column}`;
  return at.atEnd
    ? `it ends early, at ${where} — close every string, object and array`
    : `syntax error at ${where} — fix it there (a missing comma or quote, a trailing comma, or an unquoted value?)`;
}
