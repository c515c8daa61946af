/**
 * Why a connection could not be set up, when the driver says so only in an
 * error without a SQLSTATE: these are decided on the error's class, its Node
 * code, or pg's own (English, unlocalised) wording — never on a server
 * message, which lc_messages may translate.
 */

/**
 * - `url-invalid`: the connection URL cannot be parsed (pg's parser threw).
 * - `password-missing`: the server asks for a SCRAM password and none was given.
 * - `ssl-unsupported`: the URL asks for SSL and the server does not offer it.
 * - `tls`: the TLS handshake failed (certificate not trusted, wrong host name, protocol).
 */
export type ConnectSetupFailure = 'url-invalid' | 'password-missing' | 'ssl-unsupported' | 'tls';

// Node/OpenSSL certificate and handshake codes: DEPTH_ZERO_SELF_SIGNED_CERT,
// CERT_HAS_EXPIRED, ERR_TLS_CERT_ALTNAME_INVALID, ERR_SSL_WRONG_VERSION_NUMBER…
const TLS_CODE = /CERT|^ERR_SSL_|^ERR_TLS_/;

/** The kind of connection set-up failure `err` (or one of its causes) is, if it is one. */
export function connectSetupFailureOf(err: unknown): ConnectSetupFailure | undefined {
  let current: unknown = err;
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    const code = (current as { code?: unknown }).code;
    // pg parses the URL with WHATWG URL (TypeError ERR_INVALID_URL) and decodes
    // percent-escapes of user and password (URIError).
    if (code === 'ERR_INVALID_URL' || current instanceof URIError) return 'url-invalid';
    if (current.message.startsWith('SASL: SCRAM-SERVER-FIRST-MESSAGE: client password must be')) return 'password-missing';
    if (current.message === 'The server does not support SSL connections') return 'ssl-unsupported';
    if (typeof code === 'string' && TLS_CODE.test(code)) return 'tls';
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}
