import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

/**
 * The part every CLI of this package shares: --help, --version, and an
 * honest "not implemented yet" (exit 1) for everything else until the
 * command exists. Only CLIs print and exit; the library never does.
 */

export interface CliInfo {
  /** The command name, as installed in bin. */
  name: string;
  /** One line: what the command does. */
  summary: string;
  /** The usage lines printed under --help. */
  usage: string[];
}

function version(): string {
  // ../package.json from both src/ (tsx) and dist/ (built).
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    name: string;
    version: string;
  };
  return `${pkg.name} ${pkg.version}`;
}

export function runCli(info: CliInfo, argv: string[] = process.argv.slice(2)): void {
  const { values } = parseArgs({
    args: argv,
    strict: false,
    allowPositionals: true,
    options: { help: { type: 'boolean', short: 'h' }, version: { type: 'boolean' } },
  });
  if (values.help) {
    process.stdout.write(
      `${info.name}: ${info.summary}\n\nUsage:\n${info.usage.map((u) => `  ${u}`).join('\n')}\n`,
    );
    process.stdout.write(`\n  -h --help     Show this help\n     --version  Show the package version\n`);
    return;
  }
  if (values.version) {
    process.stdout.write(`${version()}\n`);
    return;
  }
  process.stderr.write(`${info.name}: not implemented yet (${version()}); only --help and --version work.\n`);
  process.exitCode = 1;
}
