/** Passwords never reach an error message the CLI prints. */
import { describe, expect, it } from 'vitest';
import { maskCredentials } from '../../src/cli/maskCredentials.js';

describe('maskCredentials', () => {
  it('masks the password of URLs, keeping what helps to find the mistake', () => {
    expect(maskCredentials('Unknown argument: postgres://user:S3cret@db.example:5432/app')).toBe(
      'Unknown argument: postgres://user:***@db.example:5432/app',
    );
    expect(maskCredentials('postgresql://:pw@host/db and redis://u:x@y')).toBe('postgresql://:***@host/db and redis://u:***@y');
  });

  it('masks a password containing an unencoded @ or colon entirely', () => {
    const masked = maskCredentials('Unknown argument: postgres://u:p@ss:w0rd@host/db');
    expect(masked).toBe('Unknown argument: postgres://u:***@host/db');
  });

  it('masks password parameters in query strings and key=value connection strings', () => {
    expect(maskCredentials('postgres://u@h/db?sslmode=require&password=S3cret&x=1')).toBe('postgres://u@h/db?sslmode=require&password=***&x=1');
    expect(maskCredentials('host=h user=u password=S3cret dbname=d')).toBe('host=h user=u password=*** dbname=d');
  });

  it('leaves text without credentials alone', () => {
    const text = 'Unknown argument: people.email\nRun "pg-rekey --help" for usage.';
    expect(maskCredentials(text)).toBe(text);
    expect(maskCredentials('postgres://user@host/db')).toBe('postgres://user@host/db');
  });
});
