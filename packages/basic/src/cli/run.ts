import { readFileSync } from 'node:fs';
import { exitNow, SdError } from '@sd/sys';
import { writeFd } from './output.js';

/**
 * The one exit path of every sd CLI: run main, print a failure as one line
 * "NAME: message" on stderr (a stack trace only with SD_DEBUG=1), exit with
 * main's status, or 1 (systemd's EXIT_FAILURE) for an error, or the
 * error's own `exitStatus` where it has one (sd-dissect's 65/66 as
 * systemd-dissect's).
 */
export function runMain(name: string, main: (argv: string[]) => Promise<number> | number): void {
  const fail = (e: unknown): number => {
    writeFd(2, `${name}: ${errorLine(e)}\n`);
    if (process.env.SD_DEBUG === '1' && e instanceof Error && e.stack) writeFd(2, `${e.stack}\n`);
    const status = (e as { exitStatus?: unknown } | undefined)?.exitStatus;
    return typeof status === 'number' && status > 0 && status < 256 ? status : 1;
  };
  const stdioTouched = watchStdio();
  let result: Promise<number>;
  try {
    result = Promise.resolve(main(process.argv.slice(2)));
  } catch (e) {
    result = Promise.reject(e);
  }
  // Exiting here, not when the loop drains: the poller and bus connections must not keep a finished
  // CLI alive; stdout and stderr are synchronous on Linux for files, pipes and terminals, so nothing
  // written is lost.
  result.then(
    (code) => end(code, stdioTouched()),
    (e: unknown) => end(fail(e), stdioTouched()),
  );
}

/**
 * Whether process.stdin, stdout or stderr has been used from now on: Node
 * then may have changed their fds' flags (O_NONBLOCK on a pipe shared with
 * the caller) or the terminal's mode, which only Node's own exit restores.
 */
function watchStdio(): () => boolean {
  let touched = false;
  for (const name of ['stdin', 'stdout', 'stderr'] as const) {
    const d = Object.getOwnPropertyDescriptor(process, name);
    if (!d?.get || !d.configurable) {
      touched = true;
      continue;
    }
    const get = d.get;
    Object.defineProperty(process, name, {
      ...d,
      get() {
        touched = true;
        return get.call(process);
      },
    });
  }
  return () => touched;
}

/** Node flags after which its own exit writes or reports something: profiles, coverage, an inspector, reports. */
const NODE_EXIT_WORK = ['prof', 'cov', 'inspect', 'trace', 'report', 'snapshot', 'diagnostic'];

/**
 * process.exit(code), but ending with _exit once the 'exit' listeners have
 * run (the code cache is written there): Node's own exit disposes V8's
 * platform and joins its pool threads (measured here: a container start's
 * exit 4.25 -> 2.9 ms by kernel tracepoints, `--version` 2.5-4 ms of CPU),
 * and hangs while a pool thread is blocked. Node's own exit all the same where it restores or writes
 * something: stdio this process used, and node flags that write at exit.
 */
function end(code: number, stdioTouched: boolean): void {
  const flags = `${process.execArgv.join(' ')} ${process.env.NODE_OPTIONS ?? ''}`;
  if (
    stdioTouched ||
    NODE_EXIT_WORK.some((w) => flags.includes(w)) ||
    process.env.NODE_V8_COVERAGE !== undefined
  )
    process.exit(code);
  // What process.exit does before its teardown.
  process.exitCode = code;
  (process as { _exiting?: boolean })._exiting = true;
  process.emit('exit', code);
  exitNow(Number(process.exitCode ?? code));
}

/** An error as one line: SdError messages as they are, others with their class name. */
export function errorLine(e: unknown): string {
  if (e instanceof SdError) return e.message;
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return String(e);
}

/** "NAME VERSION" from the package.json next to a module's dist/ or src/ folder. */
export function packageVersion(moduleUrl: string | URL, name: string): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', moduleUrl), 'utf8')) as {
      version?: string;
    };
    return `${name} ${pkg.version ?? 'unknown'}`;
  } catch {
    return `${name} unknown`;
  }
}

/**
 * --help and --version as every sd tool answers them: the text on stdout.
 * True when one was asked for (main then returns 0), false to go on.
 */
export function answerHelpOrVersion(
  p: { help: boolean; version: boolean },
  help: string,
  version: string,
): boolean {
  if (p.help) writeFd(1, help);
  else if (p.version) writeFd(1, `${version}\n`);
  return p.help || p.version;
}
