#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { exitCodeOf, SdError } from '@sd/sys';
import { defaultConsoleMode } from './console/console.js';
import { runContainer } from './container/container.js';
import { HELP, parseArgv } from './settings/argv.js';

// sd-nspawn: parse, run, print, exit — the only place of the package that exits.

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return `sd-nspawn ${pkg.version}`;
}

async function main(argv: string[]): Promise<number> {
  const { settings, explicit, help, version: wantVersion } = parseArgv(argv);
  if (help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (wantVersion) {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  let announced = false;
  const status = await runContainer(settings, {
    explicit,
    // -q: "the only output will be the console output of the container OS itself".
    logger: { warn: (m) => settings.quiet || process.stderr.write(`${m}\n`) },
    onContainer: (c) => {
      if (settings.quiet || announced) return;
      announced = true;
      process.stderr.write(
        `Spawning container ${c.machine} on ${c.settings.directory ?? c.settings.image}.\n`,
      );
      if (defaultConsoleMode(c.settings.console) === 'interactive')
        process.stderr.write('Press ^] three times within 1s to kill container.\n');
    },
  });
  return exitCodeOf(status);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    const msg = e instanceof SdError ? e.message : e instanceof Error ? (e.stack ?? e.message) : String(e);
    process.stderr.write(`sd-nspawn: ${msg}\n`);
    process.exit(1);
  },
);
