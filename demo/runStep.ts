/**
 * Runs one pg-rekey CLI command as a subprocess, the way a DBA would, and
 * prints it: the command line, its stdout, and its stderr with pino's JSON log
 * lines rendered as short readable lines.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The built CLI (dist/src/cli/bin.js), from this file's place in dist/demo/. */
export const CLI_PATH = fileURLToPath(new URL('../src/cli/bin.js', import.meta.url));

/** What a command did. */
export interface StepResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** How to print one command's run. */
export interface RunOptions {
  readonly cwd: string;
  readonly env: Record<string, string>;
  /** Replace stdout before printing it (e.g. to mask a generated key). */
  readonly showStdout?: (stdout: string) => string;
  /** Kill the command after this long (default 5 minutes). */
  readonly timeoutMs?: number;
}

/** The child currently running, so a signal handler can stop it. */
export let currentChild: ChildProcess | undefined;

const INDENT = '    ';
const LEVELS: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };

function printBlock(text: string, write: (line: string) => void): void {
  const lines = text.replace(/\n+$/, '').split('\n');
  if (lines.length === 1 && lines[0] === '') return;
  for (const line of lines) write(`${INDENT}${line}`.trimEnd());
}

/** One stderr line: a pino JSON record becomes `[level] msg key=value …`, anything else stays as is. */
export function renderLogLine(line: string): string {
  if (!line.startsWith('{')) return line;
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const { level, time, msg, ...rest } = record;
  if (msg === 'progress' && typeof rest.target === 'string') {
    const eta = rest.etaSeconds === null || rest.etaSeconds === undefined ? '' : `, ETA ${String(rest.etaSeconds)} s`;
    return `[progress] ${rest.target}: ${String(rest.rows)} of ~${String(rest.estimatedTotal)} rows, ${String(rest.rate)} rows/s${eta}`;
  }
  void time;
  const fields = Object.entries(rest)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  const name = typeof level === 'number' ? (LEVELS[level] ?? String(level)) : String(level);
  return `[${name}] ${String(msg ?? '')}${fields ? ` ${fields}` : ''}`;
}

/** Runs `pg-rekey …args`, printing the command and its output as it arrives. */
export function runStep(args: readonly string[], options: RunOptions): Promise<StepResult> {
  console.log(`  $ pg-rekey ${args.map(quoteArg).join(' ')}`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_PATH, ...args], {
      cwd: options.cwd,
      env: options.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    currentChild = child;
    let stdout = '';
    let stderr = '';
    let pendingErr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    // stderr is printed live (progress), stdout once the command ends (it may need masking).
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      pendingErr += chunk;
      const lines = pendingErr.split('\n');
      pendingErr = lines.pop() ?? '';
      for (const line of lines) if (line !== '') console.log(`${INDENT}${renderLogLine(line)}`);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 300_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      currentChild = undefined;
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      currentChild = undefined;
      if (pendingErr !== '') console.log(`${INDENT}${renderLogLine(pendingErr)}`);
      printBlock(options.showStdout ? options.showStdout(stdout) : stdout, (l) => console.log(l));
      console.log(`  → exit ${code ?? `signal ${signal}`}`);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

function quoteArg(arg: string): string {
  return /^[\w.,:/=@+-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}
