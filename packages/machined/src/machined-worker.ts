// sd-machined's worker process: one long operation (a copy into or out of
// a machine, an image removal, clone or quota limit), started by the daemon
// with a spawn program, answering on fd 3. Not a command for people.
import { runWorker } from './worker/run.js';

runWorker(process.argv[2] ?? '').then(
  (code) => process.exit(code),
  () => process.exit(1),
);
