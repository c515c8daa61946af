/** pg-rekey public API (re-exports only). */
export { FORMATS, isFormat, formatHasKeyId, type Format } from './crypto/formats.js';
export {
  Codec,
  type CodecOptions,
  type DecryptOptions,
  type Decrypted,
  type EncryptOptions,
  type Reencrypted,
  type ReencryptOptions,
} from './crypto/codec.js';
export { createCodec, createCodecFromKeyring, type CreateCodecOptions } from './crypto/createCodec.js';
export { Keyring, keyringFromResolved, loadKeyring, type KeyRole, type KeyringKey, type LoadKeyringOptions } from './crypto/keyring.js';
export { resolveSecret, resolveKeys, type KeyConfig, type ResolvedKey, type ResolveOptions } from './crypto/keySources.js';
export { fingerprintSecret, fingerprintSecretAsync } from './crypto/fingerprint.js';
export { generateKey } from './crypto/generateKey.js';
export { deriveDjangoFernetKey } from './crypto/kdf.js';
export type { RandomSource } from './crypto/randomSource.js';
export * from './errors.js';
export { checkKeys, type CheckKeysInput, type CheckKeysReport, type CheckedKey } from './crypto/checkKeys.js';
export { runVerify, type VerifyInput, type VerifyOutcome } from './verify/verify.js';
export type { ColumnReport, VerifyFinding, VersionCounts } from './verify/verifyTarget.js';
export { classifyValue, type ValueClass, type VerifyFailureReason } from './verify/classifyValue.js';
export type { SampleReport, SampleSpec } from './verify/readTarget.js';
