import { join } from 'node:path';

/**
 * Every path machined uses, from one object: systemd's defaults under `/`,
 * or the same layout under a temporary root for tests.
 */
export interface MachinedPaths {
  /** machined's state: one file a machine (systemd's /run/systemd/machines). */
  machinesStateDir: string;
  /** Where new images go (PoolPath). */
  poolDir: string;
  /** The image search path, first match wins. */
  imageSearchPath: string[];
}

export function defaultPaths(root = '/'): MachinedPaths {
  const at = (p: string) => join(root, p);
  return {
    machinesStateDir: at('/run/systemd/machines'),
    poolDir: at('/var/lib/machines'),
    imageSearchPath: [
      '/etc/machines',
      '/run/machines',
      '/var/lib/machines',
      '/var/lib/container',
      '/usr/local/lib/machines',
      '/usr/lib/machines',
    ].map(at),
  };
}
