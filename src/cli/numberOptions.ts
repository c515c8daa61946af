import { UsageError } from '../errors.js';

/**
 * Numeric command-line options, checked in one place. yargs turns "abc" into
 * NaN and accepts "1.5" or "-1" for a `number` option; passed on, those reach
 * SQL (an internal error), a slice (`migrate down --count 0` undid everything)
 * or the audit trail ("seed NaN"). Every numeric option goes through here so a
 * bad value is a usage error (exit 2) before anything is opened.
 */

/** Checks a whole-number flag value: an integer of at least `min` (and at most `max`, if given); names the flag on error. */
export function parseWholeNumber(flag: string, value: unknown, min: number, max?: number): number {
  if (Array.isArray(value)) throw new UsageError(`--${flag} is given more than once — give it once`);
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || (max !== undefined && value > max)) {
    const range = max === undefined ? `at least ${min}` : `at least ${min} and at most ${max}`;
    throw new UsageError(`--${flag} takes a whole number of ${range}${describeGot(value)}, e.g. --${flag} ${Math.max(min, 1)}`);
  }
  return value;
}

/** " (got …)" for an error message; yargs has already turned non-numeric text into NaN. */
function describeGot(value: unknown): string {
  if (typeof value === 'number' && Number.isFinite(value)) return ` (got ${value})`;
  return ' (got something that is not a number)';
}

/** What {@link wholeNumberOption} takes besides the flag. */
export interface WholeNumberOptionSpec {
  /** The smallest accepted value (0 or 1 in practice). */
  min: number;
  /** The largest accepted value, if there is one. */
  max?: number;
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
    coerce: (value: unknown) => parseWholeNumber(flag, value, spec.min, spec.max),
  };
}

/** What {@link boundedNumberOption} takes besides the flag. */
export interface BoundedNumberOptionSpec {
  /** Values must be greater than this. */
  above: number;
  /** Values must be at most this. */
  atMost: number;
  describe: string;
}

/** A yargs option definition for a number (fractions allowed) in (above, atMost], e.g. a percentage. */
export function boundedNumberOption(flag: string, spec: BoundedNumberOptionSpec) {
  return {
    type: 'number' as const,
    requiresArg: true,
    describe: spec.describe,
    coerce: (value: unknown) => {
      if (Array.isArray(value)) throw new UsageError(`--${flag} is given more than once — give it once`);
      if (typeof value !== 'number' || !(value > spec.above && value <= spec.atMost)) {
        throw new UsageError(`--${flag} takes a number above ${spec.above} and at most ${spec.atMost}${describeGot(value)}, e.g. --${flag} ${Math.min(spec.atMost, 5)}`);
      }
      return value;
    },
  };
}
