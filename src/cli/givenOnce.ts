import { UsageError } from '../errors.js';

/**
 * A yargs `coerce` for an option that takes one value. yargs collects a
 * repeated option into an array, which the code behind a string option does
 * not expect (an internal error, or worse: `keys generate` printed "undefined"
 * with exit 0, which a pipe into a secret store would have stored as the key);
 * which value was meant is unclear anyway, so a repeated option is a usage mistake.
 */
export function givenOnce(flag: string): (value: unknown) => unknown {
  return (value) => {
    if (Array.isArray(value)) throw new UsageError(`--${flag} is given more than once — give it once`);
    return value;
  };
}
