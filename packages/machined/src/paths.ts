import { MACHINE_IMAGE_SEARCH_PATH, MACHINE_POOL_DIR, MACHINES_STATE_DIR, under } from '@sd/basic';

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
  const [machinesStateDir = '', poolDir = ''] = under(root, [MACHINES_STATE_DIR, MACHINE_POOL_DIR]);
  return { machinesStateDir, poolDir, imageSearchPath: under(root, MACHINE_IMAGE_SEARCH_PATH) };
}
