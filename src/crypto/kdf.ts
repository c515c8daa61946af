/**
 * Memoized PBKDF2-HMAC-SHA256. Each derivation costs 100,000 iterations (tens of
 * milliseconds), so it must run once per key per process — never per value and
 * never per codec. Results are keyed by a SHA-256 of the inputs so the memo
 * never holds a secret as a map key; it lives only in this process's memory.
 */
import { createHash, pbkdf2, pbkdf2Sync } from 'node:crypto';

/** Iteration count of every PBKDF2 derivation pg-rekey performs. */
export const PBKDF2_ITERATIONS = 100_000;

const memo = new Map<string, Buffer>();
const inFlight = new Map<string, Promise<Buffer>>();
let computations = 0;

function memoKey(password: Buffer, salt: Buffer, keyLength: number): string {
  const h = createHash('sha256');
  // Length prefixes keep (password, salt) pairs unambiguous.
  const lengths = Buffer.alloc(12);
  lengths.writeUInt32BE(password.length, 0);
  lengths.writeUInt32BE(salt.length, 4);
  lengths.writeUInt32BE(keyLength, 8);
  return h.update(lengths).update(password).update(salt).digest('hex');
}

/** Synchronous, memoized PBKDF2-HMAC-SHA256 with {@link PBKDF2_ITERATIONS}. */
export function pbkdf2Memo(password: Buffer, salt: Buffer, keyLength = 32): Buffer {
  const key = memoKey(password, salt, keyLength);
  let derived = memo.get(key);
  if (derived === undefined) {
    computations += 1;
    derived = pbkdf2Sync(password, salt, PBKDF2_ITERATIONS, keyLength, 'sha256');
    memo.set(key, derived);
  }
  return derived;
}

/**
 * Asynchronous variant (runs on the libuv thread pool, so several keys derive in
 * parallel); shares the memo with {@link pbkdf2Memo}.
 */
export async function pbkdf2MemoAsync(password: Buffer, salt: Buffer, keyLength = 32): Promise<Buffer> {
  const key = memoKey(password, salt, keyLength);
  const known = memo.get(key);
  if (known !== undefined) return known;
  let pending = inFlight.get(key);
  if (pending === undefined) {
    computations += 1;
    pending = new Promise<Buffer>((resolve, reject) => {
      pbkdf2(password, salt, PBKDF2_ITERATIONS, keyLength, 'sha256', (err, derived) => {
        inFlight.delete(key);
        if (err) return reject(err);
        memo.set(key, derived);
        resolve(derived);
      });
    });
    inFlight.set(key, pending);
  }
  return pending;
}

/** PBKDF2 results already computed, to hand to a worker thread of this process (see {@link adoptDerivations}). */
export type Derivations = [memoKey: string, derived: Uint8Array][];

/**
 * Every derivation this thread has computed. Worker threads have their own
 * memo: a crypto worker given these skips the 100,000-iteration runs the
 * main thread already paid for at start-up. The derived keys stay in this
 * process (structured clone between its threads).
 */
export function memoizedDerivations(): Derivations {
  return [...memo].map(([key, derived]) => [key, new Uint8Array(derived)]);
}

/** Adds derivations computed by another thread of this process to this thread's memo. */
export function adoptDerivations(derivations: Derivations): void {
  for (const [key, derived] of derivations) memo.set(key, Buffer.from(derived));
}

/** How many PBKDF2 computations this process has run (for tests and diagnostics). */
export function pbkdf2Computations(): number {
  return computations;
}

/** The (password, salt) PBKDF2 inputs of a Django-derived Fernet key. */
function djangoInputs(secretKey: string, keyId: string | undefined): [Buffer, Buffer] {
  // keyId 'default' is how the application's key manager labels the v1 key.
  if (keyId === undefined || keyId === 'default') {
    const password = Buffer.from(secretKey, 'utf8');
    return [password, createHash('sha256').update(password).digest().subarray(0, 16)];
  }
  const password = Buffer.from(`${secretKey}:${keyId}`, 'utf8');
  return [password, createHash('sha256').update(keyId, 'utf8').digest().subarray(0, 16)];
}

/**
 * Derives the 32-byte Fernet key the Django application derives from its
 * SECRET_KEY: v1 when `keyId` is undefined or 'default', else v2
 * (see shared/vectors/README.md). Memoized.
 */
export function deriveDjangoFernetKey(secretKey: string, keyId?: string): Buffer {
  const [password, salt] = djangoInputs(secretKey, keyId);
  return pbkdf2Memo(password, salt);
}

/** Asynchronous {@link deriveDjangoFernetKey}; fills the same memo. */
export function deriveDjangoFernetKeyAsync(secretKey: string, keyId?: string): Promise<Buffer> {
  const [password, salt] = djangoInputs(secretKey, keyId);
  return pbkdf2MemoAsync(password, salt);
}
