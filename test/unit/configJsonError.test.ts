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
  it('finds the line and column of the first error, and names it', () => {
    const cases: [string, object][] = [
      ['{\n  "keys": [{ "id": "a", "secret": OLDSECRETKEY }]\n}', { line: 2, column: 35, problem: 'invalid symbol' }],
      ['{"a": 1,}', { line: 1, column: 9, problem: 'property name expected' }],
      ['{"a" 1}', { line: 1, column: 6, problem: 'colon expected' }],
      ['{"a": "x\ny"}', { line: 1, column: 7, problem: 'unexpected end of string' }],
      ['{"a": tru}', { line: 1, column: 7, problem: 'invalid symbol' }],
      ['{"a": 01}', { line: 1, column: 8, problem: 'comma expected' }],
      ['{"a": "\\x"}', { line: 1, column: 7, problem: 'invalid escape character' }],
      ['{} x', { line: 1, column: 4, problem: 'invalid symbol' }],
      ['\uFEFF{}', { line: 1, column: 1, problem: 'invalid symbol' }],
    ];
    for (const [text, expected] of cases) expect(findJsonSyntaxError(text), text).toEqual({ ...expected, atEnd: false });
  });

  it('says when the text ends early', () => {
    expect(findJsonSyntaxError('{"a": [1, 2')).toMatchObject({ line: 1, column: 12, atEnd: true });
    expect(findJsonSyntaxError('')).toMatchObject({ line: 1, column: 1, atEnd: true });
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
      `config file ${file} is not valid JSON: invalid symbol at line 3, column 30 — fix it there (a missing comma or quote, a trailing comma, or an unquoted value?)`,
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
    expect(message).toContain('is not valid JSON: invalid symbol at line 1, column 35');
  });
});
