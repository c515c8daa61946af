/**
 * The library's entry points for codecs: createCodec (resolves secret
 * references, async) and createCodecFromKeyring (synchronous, for worker threads
 * that receive already-resolved secrets from their parent).
 */
import { Codec, type CodecOptions } from './codec.js';
import type { Format } from './formats.js';
import { loadKeyring, type Keyring, type LoadKeyringOptions } from './keyring.js';

/** Options of {@link createCodec}: format, keys (first = primary), where references resolve, clock and IV source. */
export interface CreateCodecOptions extends LoadKeyringOptions, CodecOptions {}

/**
 * Resolves the keys' secret references, validates and derives them, and returns
 * a Codec. Throws KeySourceError, KeyInvalidError or ConfigError.
 */
export async function createCodec(options: CreateCodecOptions): Promise<Codec> {
  const keyring = await loadKeyring(options);
  return new Codec(options.format, keyring, options);
}

/** A Codec over an already-built keyring (synchronous). */
export function createCodecFromKeyring(format: Format, keyring: Keyring, options: CodecOptions = {}): Codec {
  return new Codec(format, keyring, options);
}
