/**
 * The crypto step runs inline on the main thread (--crypto-threads 0) or on a
 * pool of worker threads (the default, cores − 1; here 2, so batches are
 * dispatched between threads). Both paths, for the dry run and the rotation,
 * must give the same counts and rewrite every value exactly once.
 */
import { describe, expect, it } from 'vitest';
import {
  countRewrites,
  expectAllUnderKey,
  expectEachRewrittenOnce,
  expectExit,
  useFreshRotations,
} from '../helpers/rotationFixture.js';

const freshRotation = useFreshRotations();

const ROWS = 5000;
const MOBNOS = ROWS - Math.floor(ROWS / 7); // every seventh mobno is NULL

describe.each([0, 2])('rotate --crypto-threads %i', (threads) => {
  it('dry run and rotation count the same, and every value is rewritten exactly once', async () => {
    const { db, ws } = await freshRotation(`threads${threads}`, ROWS);
    await countRewrites(db.pool);
    const crypto = ['--crypto-threads', String(threads), '--batch-size', '300', '--json'];

    const dry = await ws.run(['rotate', '--dry-run', ...crypto]);
    expectExit(dry, 0);
    expect(JSON.parse(dry.stdout).targets[0].wouldChange).toEqual({ email: { old: ROWS }, mobno: { old: MOBNOS } });

    const result = await ws.run(['rotate', ...crypto]);
    expectExit(result, 0);
    expect(JSON.parse(result.stdout).bySource).toEqual({ 'public.people': { email: { old: ROWS }, mobno: { old: MOBNOS } } });
    await expectEachRewrittenOnce(db.pool, ROWS);
    expect(await expectAllUnderKey(db.pool, 'new')).toBe(ROWS);
  }, 120_000);
});
