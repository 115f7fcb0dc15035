import { packageVersion, runMain, writeFd } from '@sd/basic';
import { exitCodeOf, isatty } from '@sd/sys';
import { defaultConsoleMode } from './console/console.js';
import { runContainer } from './container/container.js';
import { HELP, parseArgv } from './settings/argv.js';

// sd-nspawn: parse, run, print, exit — the only place of the package that exits.

async function main(argv: string[]): Promise<number> {
  const { settings, explicit, help, version: wantVersion } = parseArgv(argv);
  if (help) {
    writeFd(1, HELP);
    return 0;
  }
  if (wantVersion) {
    writeFd(1, `${packageVersion(import.meta.url, 'sd-nspawn')}\n`);
    return 0;
  }
  // systemd-nspawn's default off a terminal is read-only: the guest's console output is shown (the
  // library's own default stays a pipe, for programs that pass their stdio).
  if (settings.console === undefined && !(isatty(0) && isatty(1))) settings.console = 'read-only';
  // Notices that come while the container starts go out after the banner, as systemd-nspawn orders them.
  let announced = false;
  const held: string[] = [];
  const say = (m: string) => settings.quiet || writeFd(2, `${m}\n`);
  const flush = () => {
    announced = true;
    for (const m of held.splice(0)) say(m);
  };
  let status: Awaited<ReturnType<typeof runContainer>>;
  try {
    status = await runContainer(settings, {
      explicit,
      // Nothing else runs while the container starts: its helpers' answers are awaited on this thread.
      briefWaitMs: 50,
      // -q: "the only output will be the console output of the container OS itself".
      logger: { warn: (m) => (announced ? say(m) : held.push(m)) },
      onContainer: (c) => {
        if (announced) return;
        say(`Spawning container ${c.machine} on ${c.settings.directory ?? c.settings.image}.`);
        if (defaultConsoleMode(c.settings.console) === 'interactive')
          say('Press ^] three times within 1s to kill container.');
        flush();
      },
    });
  } finally {
    flush();
  }
  return exitCodeOf(status);
}

runMain('sd-nspawn', main);
