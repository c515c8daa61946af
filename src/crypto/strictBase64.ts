/**
 * Strict base64 helpers. Buffer.from(text, 'base64url') silently skips invalid
 * characters, accepts both alphabets, missing padding and non-zero trailing bits,
 * so one value could have many spellings. pg-rekey compares stored values
 * byte-for-byte (compare-and-swap writes, "already rotated" checks), so a value
 * must have exactly one encoding: we decode leniently and accept only when
 * re-encoding gives back the exact input.
 */

/** Encodes `bytes` as url-safe base64, with `=` padding when `padded`. */
export function encodeBase64Url(bytes: Uint8Array, padded: boolean): string {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
  if (!padded) return text;
  const rest = text.length & 3;
  return rest === 0 ? text : rest === 2 ? text + '==' : text + '=';
}

/**
 * Decodes canonical url-safe base64, or returns undefined. With
 * `padding: 'required'` the text must be `=`-padded to a multiple of 4; with
 * `'forbidden'` it must carry no `=` at all. Whitespace, the standard alphabet's
 * `+` and `/`, and non-zero trailing bits are all refused.
 */
export function decodeBase64UrlStrict(
  text: string,
  padding: 'required' | 'forbidden',
): Buffer | undefined {
  const rest = text.length & 3;
  if (padding === 'required' ? rest !== 0 : rest === 1) return undefined;
  const bytes = Buffer.from(text, 'base64url');
  return encodeBase64Url(bytes, padding === 'required') === text ? bytes : undefined;
}

/**
 * Decodes canonical base64 in either alphabet (standard or url-safe, not mixed),
 * padded or not; used for key material typed by people, not for stored values.
 */
export function decodeBase64AnyStrict(text: string): Buffer | undefined {
  const urlSafe = /[-_]/.test(text);
  if (urlSafe && /[+/]/.test(text)) return undefined;
  const padded = text.endsWith('=');
  if (padded && (text.length & 3) !== 0) return undefined;
  if (!padded && (text.length & 3) === 1) return undefined;
  const bytes = Buffer.from(text, urlSafe ? 'base64url' : 'base64');
  let again = bytes.toString(urlSafe ? 'base64url' : 'base64');
  if (urlSafe && padded) again = encodeBase64Url(bytes, true);
  if (!urlSafe && !padded) again = again.replace(/=+$/, '');
  return again === text ? bytes : undefined;
}
