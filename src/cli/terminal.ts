/**
 * Whether output to `stream` may draw — progress bars, screen clears: only on
 * a terminal that understands cursor movement. A TTY whose TERM is "dumb"
 * (an Emacs shell, some CI consoles) would print the escape sequences as
 * garbage, so there long commands write log lines as they do to a pipe.
 */
export function canDrawOn(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  return stream.isTTY === true && env.TERM !== 'dumb';
}
