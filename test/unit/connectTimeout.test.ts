/**
 * libpq's connect_timeout in a database URL, which pg's JavaScript client
 * ignores: pg-rekey reads it (connectTimeoutOf), by libpq's rules. The CLI
 * side (a silent server, a bad value) is in test/cli/connectTimeout.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { connectTimeoutOf } from '../../src/db/connectTimeout.js';
import { UsageError } from '../../src/errors.js';

const url = (query: string) => `postgres://u:secret@db.example:5432/app${query}`;

describe('connectTimeoutOf', () => {
  it("reads whole seconds, 1 as libpq's minimum of 2, and zero or negative as 'wait indefinitely' (0)", () => {
    expect(connectTimeoutOf(url('?connect_timeout=3'))).toBe(3000);
    expect(connectTimeoutOf(url('?sslmode=require&connect_timeout=15'))).toBe(15_000);
    expect(connectTimeoutOf(url('?connect_timeout=1'))).toBe(2000);
    expect(connectTimeoutOf(url('?connect_timeout=0'))).toBe(0);
    expect(connectTimeoutOf(url('?connect_timeout=-5'))).toBe(0);
  });

  it('gives nothing for a URL without it, or a connection string that is not a URL', () => {
    expect(connectTimeoutOf(url(''))).toBeUndefined();
    expect(connectTimeoutOf(url('?application_name=x'))).toBeUndefined();
    expect(connectTimeoutOf('/var/run/postgresql app')).toBeUndefined();
  });

  it('refuses what libpq refuses, naming the setting and never the URL', () => {
    for (const bad of ['abc', '2.5', '', '10s']) {
      let error: unknown;
      try {
        connectTimeoutOf(url(`?connect_timeout=${bad}`));
      } catch (err) {
        error = err;
      }
      expect(error, bad).toBeInstanceOf(UsageError);
      expect((error as Error).message).toContain('connect_timeout');
      expect((error as Error).message).not.toContain('secret');
    }
  });
});
