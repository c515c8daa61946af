/**
 * The crypto pool's threads get the main thread's PBKDF2 results instead of
 * deriving every key again (100,000 iterations each, at every rotate start).
 * A worker thread has its own memo, so this runs one: it adopts what this
 * thread derived and must then derive the same key without computing it.
 * The worker loads the compiled module (npm test builds first).
 */
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { deriveDjangoFernetKey, memoizedDerivations, type Derivations } from '../../src/crypto/kdf.js';

const KDF_MODULE = new URL('../../dist/src/crypto/kdf.js', import.meta.url).href;

/** In a fresh worker thread: adopt `derivations` (if any), derive `secret`'s v1 key; report the key and the PBKDF2 runs. */
function deriveInWorker(secret: string, derivations: Derivations | null): Promise<{ key: string; computations: number }> {
  const source = `
    const { workerData, parentPort } = require('node:worker_threads');
    import(workerData.module).then((kdf) => {
      if (workerData.derivations) kdf.adoptDerivations(workerData.derivations);
      const key = kdf.deriveDjangoFernetKey(workerData.secret).toString('hex');
      parentPort.postMessage({ key, computations: kdf.pbkdf2Computations() });
    });`;
  return new Promise((resolve, reject) => {
    const worker = new Worker(source, { eval: true, workerData: { module: KDF_MODULE, secret, derivations } });
    worker.once('message', (m: { key: string; computations: number }) => {
      void worker.terminate();
      resolve(m);
    });
    worker.once('error', reject);
  });
}

describe('handing PBKDF2 results to a worker thread', () => {
  it('a worker given the derivations derives the same key without running PBKDF2', async () => {
    const secret = `hand-over-${Math.random().toString(36).slice(2)}`;
    const expected = deriveDjangoFernetKey(secret).toString('hex');

    const cold = await deriveInWorker(secret, null);
    expect(cold).toEqual({ key: expected, computations: 1 });

    const warm = await deriveInWorker(secret, memoizedDerivations());
    expect(warm).toEqual({ key: expected, computations: 0 });
  });
});
