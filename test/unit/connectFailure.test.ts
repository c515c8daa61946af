/** Classification of connection failures that carry no SQLSTATE. */
import { describe, expect, it } from 'vitest';
import { connectSetupFailureOf } from '../../src/db/connectFailure.js';
import { isConnectionError } from '../../src/db/sqlstate.js';

/** A Node system error as net.connect or fs report it. */
function systemError(code: string, syscall: string): Error {
  return Object.assign(new Error(`${syscall} ${code}`), { code, syscall });
}

describe('isConnectionError', () => {
  it('counts a failed connect to a missing or forbidden Unix socket, and unreachable networks', () => {
    expect(isConnectionError(systemError('ENOENT', 'connect'))).toBe(true);
    expect(isConnectionError(systemError('EACCES', 'connect'))).toBe(true);
    expect(isConnectionError(systemError('ENETUNREACH', 'connect'))).toBe(true);
    expect(isConnectionError(systemError('EAI_AGAIN', 'getaddrinfo'))).toBe(true);
    expect(isConnectionError(new Error('wrapped', { cause: systemError('ENOENT', 'connect') }))).toBe(true);
  });

  it('does not count a missing file', () => {
    expect(isConnectionError(systemError('ENOENT', 'open'))).toBe(false);
    expect(isConnectionError(systemError('EACCES', 'scandir'))).toBe(false);
  });
});

describe('connectSetupFailureOf', () => {
  it('recognises an unparseable URL, a missing password, SSL the server lacks, and TLS failures', () => {
    let invalidUrl: unknown;
    try {
      new URL('postgres://u:p@localhost:99999/db');
    } catch (err) {
      invalidUrl = err;
    }
    expect(connectSetupFailureOf(invalidUrl)).toBe('url-invalid');
    expect(connectSetupFailureOf(new URIError('URI malformed'))).toBe('url-invalid');
    expect(connectSetupFailureOf(new Error('SASL: SCRAM-SERVER-FIRST-MESSAGE: client password must be a string'))).toBe('password-missing');
    expect(connectSetupFailureOf(new Error('The server does not support SSL connections'))).toBe('ssl-unsupported');
    expect(connectSetupFailureOf(Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }))).toBe('tls');
    expect(connectSetupFailureOf(Object.assign(new Error('x'), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' }))).toBe('tls');
  });

  it('leaves other errors alone', () => {
    expect(connectSetupFailureOf(new Error('boom'))).toBeUndefined();
    expect(connectSetupFailureOf(systemError('ECONNREFUSED', 'connect'))).toBeUndefined();
    expect(connectSetupFailureOf('text')).toBeUndefined();
  });
});
