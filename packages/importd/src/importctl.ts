#!/usr/bin/env node
import { packageVersion, runMain } from '@sd/basic';
import { importctl } from './cli/importctl.js';

// importctl: the transfer verbs of sd-importd (the same client as machinectl's); the only place that prints or exits.
runMain('importctl', (argv) =>
  importctl(
    argv,
    {
      out: (s) => void process.stdout.write(s),
      err: (s) => void process.stderr.write(s),
      isTTY: process.stderr.isTTY === true,
    },
    packageVersion(import.meta.url, 'importctl'),
  ),
);
