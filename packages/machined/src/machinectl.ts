import { runMain } from '@sd/basic';
import { runMachinectl } from './machinectl/main.js';

// machinectl: runMachinectl prints and returns the status; runMain is the exit path of every sd CLI.
runMain('machinectl', (argv) => runMachinectl(argv));
