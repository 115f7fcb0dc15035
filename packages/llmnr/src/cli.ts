#!/usr/bin/env node
import { formatHelp, packageVersion, parseCommandLine, runMain, UsageError } from '@sd/basic';

// sd-llmnr has no responder yet: --help and --version work, everything else says so.
const spec = {
  usage: ['sd-llmnr [OPTIONS...]', 'sd-llmnr query NAME'],
  summary: 'LLMNR (RFC 4795) responder and resolver. Not implemented yet: only the header codec exists.',
};

runMain('sd-llmnr', (argv) => {
  const p = parseCommandLine([], argv, {});
  if (p.help) process.stdout.write(formatHelp(spec, []));
  else if (p.version) process.stdout.write(`${packageVersion(import.meta.url, 'sd-llmnr')}\n`);
  else throw new UsageError('not implemented yet; only --help and --version work');
  return 0;
});
