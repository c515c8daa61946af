/**
 * The worker-thread side of the crypto pool. It starts with nothing: its
 * modules load while the main thread connects and checks keys. The first
 * message configures it — the resolved secrets and the PBKDF2 results the
 * main thread already computed (secrets and derived keys never leave the
 * process) — and it builds one Codec per format; then it runs transformBatch
 * on each batch it is sent and posts the result back.
 */
import { parentPort } from 'node:worker_threads';
import { createCodecFromKeyring } from '../crypto/createCodec.js';
import type { Codec } from '../crypto/codec.js';
import type { Format } from '../crypto/formats.js';
import { getFormatHandler } from '../crypto/getFormatHandler.js';
import { adoptDerivations, type Derivations } from '../crypto/kdf.js';
import { keyringFromResolved } from '../crypto/keyring.js';
import type { ResolvedKey } from '../crypto/keySources.js';
import type { ReadBatch } from './readRows.js';
import { transformBatch, type TransformResult } from './transformBatch.js';

/** What configures a crypto worker: its first message. */
export interface CryptoWorkerData {
  targetKeyId: string;
  targetVersion: number;
  encryptLegacy: boolean;
  /** Per format, its keys primary first. */
  keyrings: { format: Format; keys: ResolvedKey[] }[];
  /** Target name → its format and its columns' length limits (see TransformContext.maxLengths). */
  targets: Record<string, { format: Format; maxLengths: (number | null)[] }>;
  /** The main thread's PBKDF2 results, so the worker does not derive every key again. */
  derivations: Derivations;
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

async function configure(data: CryptoWorkerData): Promise<Map<Format, Codec>> {
  adoptDerivations(data.derivations);
  const codecs = new Map<Format, Codec>();
  for (const { format, keys } of data.keyrings) {
    // Derives only what the main thread did not (asynchronously, on the libuv pool), then builds from the memo.
    const handler = getFormatHandler(format);
    await Promise.all(keys.map((k) => handler.prewarmKey(k.id, k.secret)));
    codecs.set(format, createCodecFromKeyring(format, keyringFromResolved(format, keys)));
  }
  return codecs;
}

function transform(data: CryptoWorkerData, codecs: Map<Format, Codec>, req: CryptoRequest): CryptoResponse {
  try {
    const target = data.targets[req.target];
    const codec = target === undefined ? undefined : codecs.get(target.format);
    if (!target || !codec) throw new Error(`no codec for target ${req.target}`);
    return {
      id: req.id,
      result: transformBatch(req.batch, {
        codec,
        targetKeyId: data.targetKeyId,
        targetVersion: data.targetVersion,
        encryptLegacy: data.encryptLegacy,
        maxLengths: target.maxLengths,
      }),
    };
  } catch (err) {
    // Only name and message: codec errors never carry key material or values.
    const e = err instanceof Error ? err : new Error(String(err));
    return { id: req.id, error: { name: e.name, message: e.message } };
  }
}

const port = parentPort;
if (!port) throw new Error('cryptoWorker runs only as a worker thread');
port.once('message', (data: CryptoWorkerData) => {
  void configure(data).then(
    (codecs) => {
      port.on('message', (req: CryptoRequest) => port.postMessage(transform(data, codecs, req)));
      port.postMessage({ ready: true } satisfies CryptoResponse);
    },
    (err: unknown) => {
      // Thrown from a callback: an 'error' event in the parent fails every pending and future batch.
      setImmediate(() => {
        throw err;
      });
    },
  );
});
