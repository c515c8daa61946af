import type { Argv } from 'yargs';
import type { CommandHandler } from '../main.js';
import type { GlobalOptions } from '../context.js';
import { historyCommand } from './history.js';
import { keysCommand } from './keys.js';
import { migrateCommand } from './migrate.js';
import { rotateCommand } from './rotate.js';
import { statusCommand } from './status.js';
import { targetCommand } from './target.js';
import { verifyCommand } from './verify.js';

/**
 * Wraps a command body so the CLI records its exit code. yargs types a handler's
 * argv loosely; each command declares the shape it reads as `A`.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Wrap = <A>(handler: CommandHandler<A & GlobalOptions>) => (args: any) => Promise<void>;

/** Registers every top-level command on the parser. */
export function registerCommands(parser: Argv, wrap: Wrap): void {
  parser.command(historyCommand(wrap));
  parser.command(keysCommand(wrap));
  parser.command(migrateCommand(wrap));
  parser.command(targetCommand(wrap));
  parser.command(rotateCommand(wrap));
  parser.command(statusCommand(wrap));
  parser.command(verifyCommand(wrap));
}
