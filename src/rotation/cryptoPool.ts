/**
 * A small pool of worker threads for the rotator's crypto. The batch loop is
 * CPU-bound on decrypt + encrypt (profiled: ~80% of the main thread with the
 * transform inline), so moving it off the main thread lets reading, writing and
 * crypto overlap and lets a 2-core machine use both cores.
 *
 * Hand-rolled on node:worker_threads (~150 lines) rather than a pool library:
 * the needs are one fixed message type, FIFO dispatch to idle threads and
 * fail-fast on a crashed thread. Memory stays bounded: each range worker awaits
 * its batch, so at most `workers` batches are queued or in flight.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Format } from '../crypto/formats.js';
import { memoizedDerivations } from '../crypto/kdf.js';
import type { ResolvedKey } from '../crypto/keySources.js';
import type { ResolvedTarget } from '../schema/resolveTarget.js';
import type { CryptoRequest, CryptoResponse, CryptoWorkerData } from './cryptoWorker.js';
import type { BatchTransformer } from './rotateRange.js';
import type { ReadBatch } from './readRows.js';
import type { TransformResult } from './transformBatch.js';

/** What the pool's threads need: the target key and, per format, the resolved keys primary first. */
export interface CryptoPoolSettings {
  targetKeyId: string;
  targetVersion: number;
  /** Encrypt plaintext and ENC_V1 values too (rotate --encrypt-legacy). */
  encryptLegacy: boolean;
  keyrings: { format: Format; keys: ResolvedKey[] }[];
  targets: readonly Pick<ResolvedTarget, 'name' | 'format' | 'columns'>[];
}

/**
 * Threads the crypto pool starts by default: one per core but one, which the
 * main thread (pg I/O, ~8 µs of CPU per row) and a local PostgreSQL (~26 µs
 * per row) need. On the 2-core reference machine 2 threads rotate no faster
 * than 1 (both ~25k rows/s with 3 range workers: the cores are already full)
 * and cost 50 MiB more RSS.
 */
export function defaultCryptoThreads(): number {
  return Math.max(1, Math.min(availableParallelism() - 1, 8));
}

interface Task {
  request: CryptoRequest;
  resolve: (result: TransformResult) => void;
  reject: (err: Error) => void;
}

interface Thread {
  worker: Worker;
  ready: boolean;
  task: Task | undefined;
}

/**
 * Worker threads running transformBatch; `transform` is a BatchTransformer.
 * Started early (their modules load while the caller connects and checks
 * keys), then configured once; call close() when done.
 */
export class CryptoPool {
  readonly #threads: Thread[] = [];
  readonly #queue: Task[] = [];
  #nextId = 1;
  #failure: Error | undefined;
  #closed = false;
  #configured = false;

  /** Starts `threads` threads (at least one); they take no batch until {@link configure}. */
  constructor(threads: number) {
    // Compiled next to this file in dist/, so the worker loads as plain JS.
    const url = new URL('./cryptoWorker.js', import.meta.url);
    for (let i = 0; i < Math.max(1, threads); i++) {
      const thread: Thread = { worker: new Worker(url), ready: false, task: undefined };
      thread.worker.on('message', (msg: CryptoResponse) => this.#onMessage(thread, msg));
      thread.worker.on('error', (err) => this.#fail(err));
      thread.worker.on('exit', (code) => {
        if (!this.#closed) this.#fail(new Error(`a crypto worker thread exited unexpectedly (code ${code})`));
      });
      // Never keep the process alive on its own: a caller that forgets close() still exits.
      thread.worker.unref();
      this.#threads.push(thread);
    }
  }

  /**
   * Gives every thread its keys and targets; each builds its codecs and then
   * takes batches. Call once, after this thread has built the same keyrings:
   * their PBKDF2 results go along, so no thread derives a key again.
   */
  configure(settings: CryptoPoolSettings): void {
    if (this.#configured) throw new Error('the crypto pool is already configured');
    this.#configured = true;
    const data: CryptoWorkerData = {
      targetKeyId: settings.targetKeyId,
      targetVersion: settings.targetVersion,
      encryptLegacy: settings.encryptLegacy,
      keyrings: settings.keyrings,
      targets: Object.fromEntries(settings.targets.map((t) => [t.name, { format: t.format, maxLengths: t.columns.map((c) => c.maxLength) }])),
      derivations: memoizedDerivations(),
    };
    for (const thread of this.#threads) thread.worker.postMessage(data);
  }

  /** The pool as a BatchTransformer for runRotation and dry runs. */
  readonly transform: BatchTransformer = (target, batch) => this.run(target.name, batch);

  /** Transforms one batch on the next idle thread. */
  run(target: string, batch: ReadBatch): Promise<TransformResult> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#closed) return Promise.reject(new Error('the crypto pool is closed'));
    return new Promise((resolve, reject) => {
      this.#queue.push({ request: { id: this.#nextId++, target, batch }, resolve, reject });
      this.#dispatch();
    });
  }

  /** Stops every thread; pending batches are rejected. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#rejectAll(new Error('the crypto pool is closed'));
    await Promise.all(this.#threads.map((t) => t.worker.terminate()));
  }

  #dispatch(): void {
    for (const thread of this.#threads) {
      if (this.#queue.length === 0) return;
      if (!thread.ready || thread.task) continue;
      const task = this.#queue.shift()!;
      thread.task = task;
      thread.worker.postMessage(task.request);
    }
  }

  #onMessage(thread: Thread, msg: CryptoResponse): void {
    if ('ready' in msg) {
      thread.ready = true;
    } else {
      const task = thread.task;
      thread.task = undefined;
      if (task && task.request.id === msg.id) {
        if ('result' in msg) task.resolve(msg.result);
        else task.reject(Object.assign(new Error(msg.error.message), { name: msg.error.name }));
      }
    }
    this.#dispatch();
  }

  #fail(err: Error): void {
    this.#failure ??= err;
    this.#rejectAll(this.#failure);
  }

  #rejectAll(err: Error): void {
    for (const thread of this.#threads) {
      thread.task?.reject(err);
      thread.task = undefined;
    }
    for (const task of this.#queue.splice(0)) task.reject(err);
  }
}
