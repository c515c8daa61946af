/**
 * A config file with a JSON syntax error is reported by line and column only:
 * V8's message quotes the text around the error, which may be a literal secret.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findJsonSyntaxError } from '../../src/config/findJsonSyntaxError.js';
import { loadConfig } from '../../src/config/loadConfig.js';
import { planConfigChange } from '../../src/schema/addTargetToConfig.js';
import { ConfigError } from '../../src/errors.js';

describe('findJsonSyntaxError', () => {
  it('finds the line and column of the first error', () => {
    expect(findJsonSyntaxError('{\n  "keys": [{ "id": "a", "secret": OLDSECRETKEY }]\n}')).toEqual({ line: 2, column: 35, atEnd: false });
    expect(findJsonSyntaxError('{"a": 1,}')).toEqual({ line: 1, column: 9, atEnd: false });
    expect(findJsonSyntaxError('{"a" 1}')).toEqual({ line: 1, column: 6, atEnd: false });
    expect(findJsonSyntaxError('{"a": "x\ny"}')).toEqual({ line: 1, column: 9, atEnd: false });
    expect(findJsonSyntaxError('{"a": tru}')).toEqual({ line: 1, column: 10, atEnd: false });
    expect(findJsonSyntaxError('{"a": 01}')).toEqual({ line: 1, column: 8, atEnd: false });
    expect(findJsonSyntaxError('{"a": "\\x"}')).toEqual({ line: 1, column: 9, atEnd: false });
    expect(findJsonSyntaxError('{} x')).toEqual({ line: 1, column: 4, atEnd: false });
    expect(findJsonSyntaxError('\uFEFF{}')).toEqual({ line: 1, column: 1, atEnd: false });
  });

  it('says when the text ends early', () => {
    expect(findJsonSyntaxError('{"a": [1, 2')).toEqual({ line: 1, column: 12, atEnd: true });
    expect(findJsonSyntaxError('')).toEqual({ line: 1, column: 1, atEnd: true });
    expect(findJsonSyntaxError('{\n"a": "unterminated')).toEqual({ line: 2, column: 19, atEnd: true });
  });

  it('accepts what JSON.parse accepts', () => {
    for (const text of ['{}', '[]', ' {"a": [1, -2.5e+3, true, false, null, "\\u00e9\\n\\"", {}]} \n', '"x"', '0', '-0.1E5']) {
      expect(() => JSON.parse(text)).not.toThrow();
      expect(findJsonSyntaxError(text), text).toBeUndefined();
    }
  });
});

describe('loadConfig with a JSON syntax error', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'pg-rekey-config-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('names the line and column and quotes none of the text', async () => {
    const file = path.join(dir, 'pg-rekey.config.json');
    const secret = 'OLDSECRETKEYVALUE0123456789';
    await writeFile(file, `{\n  "keys": [\n    { "id": "old", "secret": ${secret} }\n  ]\n}\n`);
    const error = await loadConfig(file).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    // Booleans, so a failure cannot print the secret either.
    expect(message.includes(secret.slice(0, 6)), 'part of the secret is in the message').toBe(false);
    expect(message.includes('"secret"'), 'the text is quoted').toBe(false);
    expect(message).toBe(
      `config file ${file} is not valid JSON: syntax error at line 3, column 30 — fix it there (a missing comma or quote, a trailing comma, or an unquoted value?)`,
    );
  });
});

describe('target add with a JSON syntax error in the config file', () => {
  it('names the line and column and quotes none of the text', () => {
    const secret = 'OLDSECRETKEYVALUE0123456789';
    let error: unknown;
    try {
      planConfigChange(`{"keys": [{"id": "old", "secret": ${secret}}]}`, 'pg-rekey.config.json', {
        schema: 'public',
        table: 'people',
        columns: ['email'],
        format: 'fernet',
      });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message.includes(secret.slice(0, 6)), 'part of the secret is in the message').toBe(false);
    expect(message).toContain('is not valid JSON: syntax error at line 1, column 35');
  });
});
