#!/usr/bin/env node
import { hideBin } from 'yargs/helpers';
import { dropWritesToClosedPipes } from './closedPipes.js';
import { ExitCode } from './exitCodes.js';
import { runCli } from './main.js';

// A reader that goes away (`| head -1`) must not end a command half-way (see closedPipes).
dropWritesToClosedPipes();

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
