import { setTimeout as sleep } from 'node:timers/promises';
import { isConnectionError, isRetryable } from '../db/sqlstate.js';

/** How often and how patiently to retry a transient database failure. */
export interface RetryPolicy {
  attempts: number;
  baseDelayMs: number;
  /** Called before each retry, for a log line (never with a value, only the SQLSTATE class). */
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
  /**
   * When it returns true, a transient failure is rethrown instead of retried:
   * a stop (--max-duration, a signal) must not wait out every remaining attempt
   * of a batch an application keeps blocking.
   */
  giveUp?: () => boolean;
}

/** The default: five tries, 100 ms doubling with jitter (lock timeouts, deadlocks, serialization failures). */
export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, baseDelayMs: 100 };

/** A failure that withRetry retries: see {@link withRetry}. */
export function isTransient(err: unknown): boolean {
  return isRetryable(err) || isConnectionError(err);
}

/**
 * Runs `fn`, retrying with exponential backoff and jitter when it fails with a
 * transient error: a lock or statement timeout, a deadlock, a serialization
 * failure, or a dropped connection (the pool hands out a fresh one). Safe for
 * the batch loop because every write is a compare-and-swap in one transaction.
 */
export async function withRetry<T>(fn: () => Promise<T>, policy: RetryPolicy = DEFAULT_RETRY): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt >= policy.attempts || policy.giveUp?.() === true || !isTransient(err)) throw err;
      const delay = policy.baseDelayMs * 2 ** (attempt - 1) * (0.5 + Math.random());
      policy.onRetry?.(err, attempt, delay);
      await sleep(delay);
    }
  }
}
