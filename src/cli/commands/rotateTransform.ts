/**
 * The crypto step of rotate and of its dry run: the codecs for the target key,
 * on the crypto pool's threads when there is one, else inline.
 */
import { createCodecFromKeyring } from '../../crypto/createCodec.js';
import type { Codec } from '../../crypto/codec.js';
import { UsageError } from '../../errors.js';
import type { CryptoPool } from '../../rotation/cryptoPool.js';
import type { BatchTransformer } from '../../rotation/rotateRange.js';
import { transformBatch } from '../../rotation/transformBatch.js';
import type { ResolvedTarget } from '../../schema/resolveTarget.js';
import type { Session } from '../session.js';

/** The crypto step of a rotation to `targetKeyId`: on the pool's threads when there is one, else inline. */
export async function createTransform(
  session: Session,
  targets: readonly ResolvedTarget[],
  { targetKeyId, targetVersion, encryptLegacy }: { targetKeyId: string; targetVersion: number; encryptLegacy: boolean },
  cryptoPool: CryptoPool | undefined,
): Promise<BatchTransformer> {
  if (!session.keys.some((k) => k.id === targetKeyId)) {
    throw new UsageError(`key ${targetKeyId} is not configured here — add it to "keys" in the config file`);
  }
  if (cryptoPool) {
    // Crypto on worker threads, so reads, writes and crypto overlap on every core (see cryptoPool).
    const keyrings = [];
    for (const format of new Set(targets.map((t) => t.format))) {
      keyrings.push({ format, keys: [...(await session.keyringSecrets(format, { primary: targetKeyId }))] });
    }
    cryptoPool.configure({ targetKeyId, targetVersion, encryptLegacy, keyrings, targets });
    return cryptoPool.transform;
  }
  const codecs = new Map<string, Codec>();
  for (const t of targets) {
    codecs.set(t.name, createCodecFromKeyring(t.format, await session.keyring(t.format, { primary: targetKeyId })));
  }
  return async (target, batch) =>
    transformBatch(batch, {
      codec: codecs.get(target.name)!,
      targetKeyId,
      targetVersion,
      encryptLegacy,
      maxLengths: target.columns.map((c) => c.maxLength),
    });
}

