/**
 * yargs' "Unknown argument" message, made useful. A typo in an option
 * (`rotate --batchsize 500`) is common in hand-written deploy scripts; yargs
 * names it but suggests nothing (its recommendCommands covers commands only),
 * and it names a kebab-case typo twice (`batch-sise, batchSise`, its camelCase
 * alias). This names each unknown argument once and, for an option, the
 * closest option the command does accept.
 */

const UNKNOWN = /^Unknown arguments?: (.*)$/s;

/**
 * `message` with duplicate camelCase aliases dropped and a "did you mean"
 * per mistyped option; any other message unchanged. `argv` tells options
 * (given as `--name`) from positionals; `known` are the command's option names.
 */
export function describeUnknownArguments(message: string, argv: readonly string[], known: readonly string[]): string {
  const match = UNKNOWN.exec(message);
  if (!match) return message;
  const names = match[1]!.split(', ');
  // yargs lists `batch-sise` and its alias `batchSise`: keep the spelling the user typed.
  const typed = names.filter((n) => !names.some((other) => other !== n && other.includes('-') && camelCase(other) === n));
  const lines = [`Unknown argument${typed.length === 1 ? '' : 's'}: ${typed.join(', ')}`];
  for (const name of typed) {
    if (!argv.some((a) => a === `--${name}` || a.startsWith(`--${name}=`))) continue;
    const suggestion = closestOption(name, known);
    if (suggestion) lines.push(`--${name}: did you mean --${suggestion}?`);
  }
  return lines.join('\n');
}

/** The known option closest to `typed`, if one is close enough to be what was meant. */
export function closestOption(typed: string, known: readonly string[]): string | undefined {
  let best: { name: string; distance: number } | undefined;
  for (const name of known) {
    // A missing or extra dash (`batchsize`, `dry_run`) is the commonest slip: compare without them too.
    const distance = Math.min(editDistance(typed, name), editDistance(squash(typed), squash(name)));
    if (!best || distance < best.distance) best = { name, distance };
  }
  // Up to one edit in four characters (at least one): `--to` must not suggest `--json`.
  return best && best.distance <= Math.max(1, Math.floor(typed.length / 4)) ? best.name : undefined;
}

function squash(name: string): string {
  return name.toLowerCase().replace(/[-_]/g, '');
}

function camelCase(name: string): string {
  return name.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** Edit distance counting insertions, deletions, substitutions and swaps of neighbours (`sampel`) as one each. */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}
