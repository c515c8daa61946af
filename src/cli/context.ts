import { pino, type Logger } from 'pino';
import { loadConfig, type ResolvedConfig } from '../config/loadConfig.js';
import { UsageError } from '../errors.js';
import { createOutput, type Output } from './output.js';

/** The global options every command accepts. */
export interface GlobalOptions {
  config: string;
  databaseUrl: string | undefined;
  json: boolean;
  logLevel: string;
}

/** What a command handler gets: output, logger, and lazy access to config and database. */
export interface CommandContext {
  readonly output: Output;
  readonly logger: Logger;
  readonly env: NodeJS.ProcessEnv;
  /** Loads and validates the config file once, on first use. */
  config(): Promise<ResolvedConfig>;
  /** The database URL from --database-url or DATABASE_URL; a usage error if neither is set. */
  databaseUrl(): string;
}

/** Builds the context of one CLI invocation from its global options. */
export function createContext(options: GlobalOptions, env: NodeJS.ProcessEnv = process.env): CommandContext {
  // Logs go to stderr so stdout stays a clean result (a key, a table, JSON).
  const logger = pino({ level: options.logLevel, base: undefined }, pino.destination({ fd: 2, sync: true }));
  let config: Promise<ResolvedConfig> | undefined;
  return {
    output: createOutput({ json: options.json }),
    logger,
    env,
    config() {
      config ??= loadConfig(options.config);
      return config;
    },
    databaseUrl() {
      const url = options.databaseUrl ?? env.DATABASE_URL;
      if (!url) {
        throw new UsageError('no database given — pass --database-url postgres://… or set DATABASE_URL');
      }
      return url;
    },
  };
}
