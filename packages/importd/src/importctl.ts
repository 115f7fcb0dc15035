#!/usr/bin/env node
import { runCli } from './cli-common.js';

runCli({
  name: 'importctl',
  summary: 'pull, import and export container images',
  usage: [
    'importctl [OPTIONS...] COMMAND ...',
    'importctl pull-tar URL [NAME] | import-tar FILE [NAME] | export-tar NAME [FILE] | list-transfers',
  ],
});
