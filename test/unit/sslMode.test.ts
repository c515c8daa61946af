/** The sslmode spelling pg-rekey hands node-postgres (the connections themselves: test/integration/sslMode.test.ts). */
import { describe, expect, it } from 'vitest';
import { withSslModeAsApplied } from '../../src/db/sslMode.js';

describe('withSslModeAsApplied', () => {
  it('spells prefer, require and verify-ca as verify-full, which is how node-postgres applies them', () => {
    for (const mode of ['prefer', 'require', 'verify-ca']) {
      expect(withSslModeAsApplied(`postgres://u:p@db/app?sslmode=${mode}`)).toBe('postgres://u:p@db/app?sslmode=verify-full');
      expect(withSslModeAsApplied(`postgres://u:p@db/app?connect_timeout=5&sslmode=${mode}&application_name=x`)).toBe(
        'postgres://u:p@db/app?connect_timeout=5&sslmode=verify-full&application_name=x',
      );
    }
  });

  it('changes nothing else of the URL: a password with encoded characters stays byte for byte', () => {
    const url = 'postgres://app%40prod:p%2Fa%3Fss%26w0rd@db.example:6432/app?sslmode=require&sslrootcert=%2Fetc%2Fssl%2Frds.pem';
    expect(withSslModeAsApplied(url)).toBe(url.replace('sslmode=require', 'sslmode=verify-full'));
  });

  it("leaves libpq's meaning (uselibpqcompat=true), the other modes and strings that are not URLs alone", () => {
    for (const url of [
      'postgres://u:p@db/app?sslmode=require&uselibpqcompat=true',
      'postgres://u:p@db/app?sslmode=disable',
      'postgres://u:p@db/app?sslmode=verify-full',
      'postgres://u:p@db/app?sslmode=no-verify',
      'postgres://u:p@db/app?sslmode=requirex',
      'postgres://u:p@db/app',
      'host=/var/run/postgresql dbname=app sslmode=require',
    ]) {
      expect(withSslModeAsApplied(url)).toBe(url);
    }
  });
});
