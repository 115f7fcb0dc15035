import * as extrasModule from './extras.js';

/**
 * The network and image code (extras.ts). The library imports it as any
 * module; sd-nspawn's CLI bundle replaces this module with one that loads
 * dist/extras.cjs at the first call (tools/build/lazy-bundle.ts): a plain
 * -D start then never reads, compiles or runs it (0.5 ms less per start,
 * measured against one bundle).
 */
export const extras = (): typeof extrasModule => extrasModule;
