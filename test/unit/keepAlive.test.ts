/** libpq's keepalive settings in a database URL, which pg's JavaScript client ignores (the socket side: test/integration/tcpKeepAlive.test.ts). */
import { describe, expect, it } from 'vitest';
import { keepAliveOf } from '../../src/db/keepAlive.js';
import { UsageError } from '../../src/errors.js';

const url = (query: string) => `postgres://u:secret@db.example:5432/app${query}`;

describe('keepAliveOf', () => {
  it('probes after 30 s of silence by default, also for a connection string that is not a URL', () => {
    expect(keepAliveOf(url(''))).toEqual({ keepAlive: true, keepAliveInitialDelayMillis: 30_000 });
    expect(keepAliveOf('/var/run/postgresql app')).toEqual({ keepAlive: true, keepAliveInitialDelayMillis: 30_000 });
  });

  it("reads keepalives_idle in seconds (0: the kernel's default) and keepalives=0 as off", () => {
    expect(keepAliveOf(url('?keepalives_idle=120'))).toEqual({ keepAlive: true, keepAliveInitialDelayMillis: 120_000 });
    expect(keepAliveOf(url('?keepalives_idle=0'))).toEqual({ keepAlive: true, keepAliveInitialDelayMillis: 0 });
    expect(keepAliveOf(url('?keepalives=1&keepalives_idle=10'))).toEqual({ keepAlive: true, keepAliveInitialDelayMillis: 10_000 });
    expect(keepAliveOf(url('?keepalives=0&keepalives_idle=10'))).toEqual({ keepAlive: false, keepAliveInitialDelayMillis: 0 });
  });

  it('refuses what libpq refuses, naming the setting and never the URL', () => {
    for (const [name, bad] of [['keepalives', 'yes'], ['keepalives_idle', '30s'], ['keepalives_idle', '1.5']] as const) {
      let error: unknown;
      try {
        keepAliveOf(url(`?${name}=${bad}`));
      } catch (err) {
        error = err;
      }
      expect(error, `${name}=${bad}`).toBeInstanceOf(UsageError);
      expect((error as Error).message).toContain(name);
      expect((error as Error).message).not.toContain('secret');
    }
  });
});
