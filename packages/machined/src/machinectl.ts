import { runMachinectl } from './machinectl/main.js';

runMachinectl(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`machinectl: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  },
);
