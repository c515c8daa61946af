import { UsageError } from '../errors.js';

/**
 * Numeric command-line options, checked in one place. yargs turns "abc" into
 * NaN and accepts "1.5" or "-1" for a `number` option; passed on, those reach
 * SQL (an internal error), a slice (`migrate down --count 0` undid everything)
 * or the audit trail ("seed NaN"). Every numeric option goes through here so a
 * bad value is a usage error (exit 2) before anything is opened.
 */

/** Checks a whole-number flag value: an integer of at least `min`; names the flag on error. */
export function parseWholeNumber(flag: string, value: unknown, min: number): number {
  if (Array.isArray(value)) throw new UsageError(`--${flag} is given more than once — give it once`);
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    const got = typeof value === 'number' && Number.isFinite(value) ? ` (got ${value})` : '';
    throw new UsageError(`--${flag} takes a whole number of at least ${min}${got}, e.g. --${flag} ${Math.max(min, 1)}`);
  }
  return value;
}

/** What {@link wholeNumberOption} takes besides the flag. */
export interface WholeNumberOptionSpec {
  /** The smallest accepted value (0 or 1 in practice). */
  min: number;
  describe: string;
  default?: number;
}

/**
 * A yargs option definition for a whole number of at least `min`: a missing,
 * non-numeric, fractional, too-small or repeated value throws the CLI's UsageError.
 */
export function wholeNumberOption(flag: string, spec: WholeNumberOptionSpec) {
  return {
    type: 'number' as const,
    // Without it, `--count` with no value silently takes the default.
    requiresArg: true,
    describe: spec.describe,
    ...(spec.default !== undefined ? { default: spec.default } : {}),
    coerce: (value: unknown) => parseWholeNumber(flag, value, spec.min),
  };
}
