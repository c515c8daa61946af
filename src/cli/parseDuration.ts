import { UsageError } from '../errors.js';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses "500ms", "90s", "5m", "1h" (or "1m30s") into milliseconds; names the flag on error. */
export function parseDuration(text: string, flag: string): number {
  const parts = [...String(text).trim().matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
  const whole = parts.map((p) => p[0]).join('');
  if (parts.length === 0 || whole !== String(text).trim()) {
    throw new UsageError(`--${flag} ${text}: expected a duration such as 500ms, 90s, 5m or 1h`);
  }
  return Math.round(parts.reduce((ms, p) => ms + Number(p[1]) * UNITS[p[2]!]!, 0));
}
