export type { JsonMode, Options, ParsedArgs } from './args.js';
export { parseArgs, parseSignal, parseSize, UsageError, VERBS } from './args.js';
export type { Machine1 } from './client.js';
export { BusCallError, BusMachine1 } from './client.js';
export { formatAddress, formatBytes, formatTimestamp, renderTable } from './format.js';
export type { RunOptions } from './main.js';
export { HELP, runMachinectl } from './main.js';
