import { readFileSync } from 'node:fs';
import { SdError } from '@sd/sys';
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
  let result: Promise<number>;
  try {
    result = Promise.resolve(main(process.argv.slice(2)));
  } catch (e) {
    result = Promise.reject(e);
  }
  // process.exit: the poller and bus connections must not keep a finished CLI alive; stdout and
  // stderr are synchronous on Linux for files, pipes and terminals, so nothing written is lost.
  result.then(
    (code) => process.exit(code),
    (e: unknown) => process.exit(fail(e)),
  );
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
