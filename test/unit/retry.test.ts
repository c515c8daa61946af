/**
 * withRetry, the batch loop's answer to transient database errors: it retries
 * serialization failures, deadlocks, lock and statement timeouts and dropped
 * connections with backoff, up to the policy's attempts, and rethrows anything
 * else at once (a constraint violation, a bug) so it is not hidden.
 */
import { describe, expect, it, vi } from 'vitest';
import { withRetry } from '../../src/rotation/retry.js';

/** An error shaped like node-postgres's DatabaseError for SQLSTATE `code`. */
const pgError = (code: string) => Object.assign(new Error(`sqlstate ${code}`), { code, severity: 'ERROR' });

/** A function failing with `errors` in turn, then returning 'done'. */
function failing(...errors: Error[]) {
  let calls = 0;
  const fn = vi.fn(async () => {
    const err = errors[calls++];
    if (err) throw err;
    return 'done';
  });
  return fn;
}

const policy = (onRetry = vi.fn()) => ({ attempts: 5, baseDelayMs: 1, onRetry });

describe('withRetry', () => {
  it.each([
    ['40001', 'serialization failure'],
    ['40P01', 'deadlock'],
    ['55P03', 'lock timeout'],
    ['57014', 'statement timeout'],
    ['08006', 'connection failure'],
    ['57P01', 'server shutting down'],
  ])('retries %s (%s) and returns the eventual result', async (code) => {
    const onRetry = vi.fn();
    const fn = failing(pgError(code), pgError(code));
    await expect(withRetry(fn, policy(onRetry))).resolves.toBe('done');
    expect(fn).toHaveBeenCalledTimes(3);
    expect(onRetry.mock.calls.map((c) => c[1])).toEqual([1, 2]);
  });

  it('retries a dropped socket (no SQLSTATE, a Node network code)', async () => {
    const fn = failing(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }));
    await expect(withRetry(fn, policy())).resolves.toBe('done');
    expect(fn).toHaveBeenCalledTimes(2);
  });

  it.each(['Connection terminated unexpectedly', 'Client has encountered a connection error and is not queryable'])(
    "retries pg's own connection errors (no code): %s",
    async (message) => {
      const fn = failing(new Error(message));
      await expect(withRetry(fn, policy())).resolves.toBe('done');
      expect(fn).toHaveBeenCalledTimes(2);
    },
  );

  it('gives up after the policy attempts and rethrows the last error', async () => {
    const fn = failing(...Array.from({ length: 10 }, () => pgError('55P03')));
    await expect(withRetry(fn, policy())).rejects.toMatchObject({ code: '55P03' });
    expect(fn).toHaveBeenCalledTimes(5);
  });

  it.each([
    ['23505', pgError('23505')],
    ['42P01', pgError('42P01')],
    ['a plain Error', new Error('a bug')],
  ])('does not retry %s', async (_, error) => {
    const onRetry = vi.fn();
    const fn = failing(error);
    await expect(withRetry(fn, policy(onRetry))).rejects.toBe(error);
    expect(fn).toHaveBeenCalledTimes(1);
    expect(onRetry).not.toHaveBeenCalled();
  });
});
