#!/usr/bin/env node
import { hideBin } from 'yargs/helpers';
import { ExitCode } from './exitCodes.js';
import { runCli } from './main.js';

// The executable: everything else lives in runCli so tests can call it in-process.
runCli(hideBin(process.argv)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`pg-rekey: internal error: ${(error as Error)?.message}\n`);
    process.exitCode = ExitCode.INTERNAL;
  },
);
