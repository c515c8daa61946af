/**
 * The worker-thread side of the crypto pool: builds one Codec per format from
 * the resolved secrets its parent passed in workerData (secrets never leave the
 * process; PBKDF2 runs once per worker), then runs transformBatch on each batch
 * it is sent and posts the result back.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createCodecFromKeyring } from '../crypto/createCodec.js';
import type { Codec } from '../crypto/codec.js';
import type { Format } from '../crypto/formats.js';
import { getFormatHandler } from '../crypto/getFormatHandler.js';
import { keyringFromResolved } from '../crypto/keyring.js';
import type { ResolvedKey } from '../crypto/keySources.js';
import type { ReadBatch } from './readRows.js';
import { transformBatch, type TransformResult } from './transformBatch.js';

/** What a crypto worker is started with. */
export interface CryptoWorkerData {
  targetKeyId: string;
  targetVersion: number;
  encryptLegacy: boolean;
  /** Per format, its keys primary first. */
  keyrings: { format: Format; keys: ResolvedKey[] }[];
  /** Target name → its format and its columns' length limits (see TransformContext.maxLengths). */
  targets: Record<string, { format: Format; maxLengths: (number | null)[] }>;
}

/** A batch to transform. */
export interface CryptoRequest {
  id: number;
  target: string;
  batch: ReadBatch;
}

/** The answer to a request: its result, or a programming error (never a bad value: those are failures). */
export type CryptoResponse =
  | { id: number; result: TransformResult }
  | { id: number; error: { name: string; message: string } }
  | { ready: true };

async function start(): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error('cryptoWorker runs only as a worker thread');
  const data = workerData as CryptoWorkerData;
  const codecs = new Map<Format, Codec>();
  for (const { format, keys } of data.keyrings) {
    // Derive asynchronously first (libuv thread pool), then build synchronously from the memo.
    const handler = getFormatHandler(format);
    await Promise.all(keys.map((k) => handler.prewarmKey(k.id, k.secret)));
    codecs.set(format, createCodecFromKeyring(format, keyringFromResolved(format, keys)));
  }
  port.on('message', (req: CryptoRequest) => {
    let response: CryptoResponse;
    try {
      const target = data.targets[req.target];
      const codec = target === undefined ? undefined : codecs.get(target.format);
      if (!target || !codec) throw new Error(`no codec for target ${req.target}`);
      response = { id: req.id, result: transformBatch(req.batch, {
          codec,
          targetKeyId: data.targetKeyId,
          targetVersion: data.targetVersion,
          encryptLegacy: data.encryptLegacy,
          maxLengths: target.maxLengths,
        }) };
    } catch (err) {
      // Only name and message: codec errors never carry key material or values.
      const e = err instanceof Error ? err : new Error(String(err));
      response = { id: req.id, error: { name: e.name, message: e.message } };
    }
    port.postMessage(response);
  });
  port.postMessage({ ready: true } satisfies CryptoResponse);
}

void start().catch((err: unknown) => {
  // An 'error' event in the parent fails every pending and future batch.
  throw err;
});
