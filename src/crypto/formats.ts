/**
 * The stored-value formats pg-rekey can read and write (DESIGN.md §4).
 */

/** Every supported format id, in documentation order. */
export const FORMATS = ['fernet', 'django-fernet-v1', 'django-fernet-v2', 'aes-256-gcm'] as const;

/** A supported stored-value format id. */
export type Format = (typeof FORMATS)[number];

/** True when `value` is one of {@link FORMATS}. */
export function isFormat(value: unknown): value is Format {
  return typeof value === 'string' && (FORMATS as readonly string[]).includes(value);
}

/**
 * True when stored values of `format` name their key id. Values of the other
 * formats are decrypted by trying keys primary-first.
 */
export function formatHasKeyId(format: Format): boolean {
  return format === 'django-fernet-v2' || format === 'aes-256-gcm';
}
