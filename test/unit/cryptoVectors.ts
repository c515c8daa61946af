/** Loads the shared codec vectors (shared/vectors, next to the repository). */
import { readFileSync } from 'node:fs';
import type { Format } from '../../src/crypto/formats.js';

const VECTORS = new URL('../../../shared/vectors/', import.meta.url);

function load<T>(name: string): T {
  return JSON.parse(readFileSync(new URL(name, VECTORS), 'utf8')) as T;
}

/** An entry of fernet-spec/generate.json. */
export interface GenerateVector { token: string; now: string; iv: number[]; src: string; secret: string }
/** An entry of fernet-spec/verify.json. */
export interface VerifyVector { token: string; now: string; ttl_sec: number; src: string; secret: string }
/** An entry of fernet-spec/invalid.json. */
export interface InvalidVector { desc: string; token: string; now: string; ttl_sec: number; secret: string }
/** An entry of django-fernet.json. */
export interface DjangoVector {
  format: Extract<Format, 'django-fernet-v1' | 'django-fernet-v2'>;
  secretKey: string;
  keyId?: string;
  plaintext: string;
  time: number;
  iv: string;
  fernetToken: string;
  stored: string;
  derivedFernetKey: string;
}

/** The official Fernet spec vectors. */
export const fernetSpec = {
  generate: load<GenerateVector[]>('fernet-spec/generate.json'),
  verify: load<VerifyVector[]>('fernet-spec/verify.json'),
  invalid: load<InvalidVector[]>('fernet-spec/invalid.json'),
};

/** The seed Django application's stored values. */
export const djangoVectors = load<DjangoVector[]>('django-fernet.json');

/** Unix seconds of a spec vector's ISO `now`. */
export function specSeconds(iso: string): number {
  return Math.floor(Date.parse(iso) / 1000);
}

/** A random source that always returns the given bytes (reproduces vectors). */
export function fixedBytes(bytes: Uint8Array | number[] | string): (size: number) => Buffer {
  const buf = typeof bytes === 'string' ? Buffer.from(bytes, 'hex') : Buffer.from(bytes);
  return (size) => {
    if (size !== buf.length) throw new Error(`fixed source has ${buf.length} bytes, ${size} requested`);
    return buf;
  };
}
