/**
 * Everything the CLI prints goes through here: results to stdout (human text or
 * one JSON document with --json), diagnostics to stderr. Library code never prints.
 */

import { isReaderGone } from './closedPipes.js';
import { maskCredentials } from './maskCredentials.js';

/** Where and how a command writes its result. */
export interface Output {
  readonly json: boolean;
  /** Prints a result: `human()` text normally, `data` as JSON with --json. */
  result(data: unknown, human: () => string): void;
  /** A line of human-only narration on stderr (suppressed with --json). */
  info(line: string): void;
  /** Prints an error for the user on stderr, with any password in it masked. */
  error(code: string, message: string): void;
  /** True once stdout's reader has gone (a closed pipe): a --watch loop then has nobody to refresh for. */
  readerGone(): boolean;
}

/** Builds the Output for one CLI invocation. */
export function createOutput(options: { json: boolean; stdout?: NodeJS.WritableStream; stderr?: NodeJS.WritableStream }): Output {
  const stdout = options.stdout ?? process.stdout;
  const stderr = options.stderr ?? process.stderr;
  return {
    json: options.json,
    result(data, human) {
      stdout.write(options.json ? `${JSON.stringify(data, null, 2)}\n` : ensureNewline(human()));
    },
    info(line) {
      if (!options.json) stderr.write(ensureNewline(line));
    },
    error(code, rawMessage) {
      // Every error passes here; none may show a password (see maskCredentials).
      const message = maskCredentials(rawMessage);
      stderr.write(
        options.json ? `${JSON.stringify({ error: { code, message } })}\n` : `pg-rekey: ${ensureNewline(message)}`,
      );
    },
    readerGone: () => isReaderGone(stdout),
  };
}

function ensureNewline(text: string): string {
  return text.endsWith('\n') || text === '' ? text : `${text}\n`;
}

/** Renders rows as an aligned plain-text table with a header line. */
export function formatTable(headers: readonly string[], rows: readonly (readonly unknown[])[]): string {
  const cells = [headers, ...rows.map((r) => r.map((c) => (c === null || c === undefined ? '' : String(c))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells
    .map((r) => r.map((c, i) => (c ?? '').padEnd(widths[i] ?? 0)).join('  ').trimEnd())
    .join('\n');
}
