/**
 * Output whose reader has gone. `pg-rekey history | head -1`, a watcher piped
 * into a pager the user quits, a deploy hook whose log shipper dies: the pipe
 * closes, and the next write to it fails with EPIPE. Node reports that as an
 * 'error' event on process.stdout / process.stderr, and unhandled it kills the
 * process with exit 1 ("finished, but found failures") and a stack trace — in
 * the middle of whatever it was doing, a rotation it had just opened included.
 *
 * The work and its exit code still matter when nobody reads the text (a hook
 * with `set -o pipefail` branches on the code): so writes to a closed pipe are
 * dropped and the command carries on to its own exit code. The pino logger
 * needs nothing of this: it stops logging on EPIPE by itself.
 */

const closed = new WeakSet<NodeJS.WritableStream>();

/** Drops writes to `streams` once their reader has gone, instead of crashing; call once, in the executable. */
export function dropWritesToClosedPipes(streams: readonly NodeJS.WritableStream[] = [process.stdout, process.stderr]): void {
  for (const stream of streams) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      // Any other write error (a full disk behind a redirect) is not "nobody
      // reads": let it surface as before.
      if (err.code !== 'EPIPE') throw err;
      closed.add(stream);
    });
  }
}

/** True once a write to `stream` failed because its reader had gone (the error arrives just after the write). */
export function isReaderGone(stream: NodeJS.WritableStream): boolean {
  return closed.has(stream);
}
