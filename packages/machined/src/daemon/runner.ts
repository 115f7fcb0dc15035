import { accessSync, constants } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';
import { type ChildProcess, closeQuietly, O, open, SdError, SpawnProgram, spawn } from '@sd/sys';
import { BusError } from '../bus/errors.js';
import type { InterfaceSpec } from '../bus/types.js';
import type { ImagePool } from '../images/types.js';
import { requireRoot } from './auth.js';

/**
 * Starting machines from the image pool — `machinectl start NAME`. systemd
 * starts systemd-nspawn@NAME.service through PID 1; until sd has a service
 * manager, sd-machined runs `sd-nspawn --boot` for the image as a child of
 * its own (reaped through its pidfd), on an interface of ours next to
 * machine1's. The container registers itself over the bus as any other.
 */

export const RUNNER_INTERFACE = 'io.sd.machine1.Runner';

export interface RunnerOptions {
  /** The sd-nspawn to run: a path, or a name looked up in $PATH. */
  nspawn?: string;
  /** Environment of the started sd-nspawn (the bus address it registers on). */
  env?: NodeJS.ProcessEnv;
}

function findExecutable(name: string, path = process.env.PATH ?? ''): string {
  const candidates = isAbsolute(name)
    ? [name]
    : path
        .split(delimiter)
        .filter(Boolean)
        .map((d) => join(d, name));
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {}
  }
  throw new SdError(
    'ENOENT',
    `${name} not found${isAbsolute(name) ? '' : ' in $PATH'}: cannot start machines`,
  );
}

export class MachineRunner {
  readonly #children = new Map<string, ChildProcess>();
  readonly #options: RunnerOptions;

  constructor(options: RunnerOptions = {}) {
    this.#options = options;
  }

  /** Boots image `name` of the pool; resolves with sd-nspawn's pid once it runs. */
  async start(pool: ImagePool, name: string): Promise<number> {
    if (this.#children.has(name))
      throw new BusError(
        'org.freedesktop.machine1.MachineExists',
        `Machine '${name}' is already being started or running`,
      );
    const image = await pool.get(name);
    if (!image) throw new BusError('org.freedesktop.machine1.NoSuchImage', `No image '${name}' known`);
    const where = image.type === 'raw' || image.type === 'block' ? ['-i', image.path] : ['-D', image.path];
    const nspawn = findExecutable(this.#options.nspawn ?? 'sd-nspawn', this.#options.env?.PATH);
    // systemd-nspawn@.service's options, less what sd-nspawn does not have yet.
    const argv = [
      nspawn,
      '--quiet',
      '--boot',
      '--settings=override',
      '--console=passive',
      `--machine=${name}`,
      ...where,
    ];
    const env = Object.entries(this.#options.env ?? process.env).map(([k, v]) => `${k}=${v ?? ''}`);
    const devnull = open('/dev/null', O.RDWR);
    try {
      const p = new SpawnProgram();
      p.setsid().stdio([devnull, devnull, devnull]).resetSignals().execve(nspawn, argv, env);
      // sd-nspawn runs on the host, but a daemon's children never share its memory.
      const child = await spawn(p, { shareMemory: false });
      this.#children.set(name, child);
      void child.exited.finally(() => this.#children.delete(name));
      return child.pid;
    } finally {
      closeQuietly(devnull);
    }
  }
}

export function runnerInterface(runner: MachineRunner, pool: () => ImagePool | undefined): InterfaceSpec {
  return {
    name: RUNNER_INTERFACE,
    methods: {
      StartMachine: {
        in: 's',
        out: 'u',
        inNames: ['name'],
        outNames: ['pid'],
        handler: async (ctx, name: string) => {
          await requireRoot(ctx);
          const p = pool();
          if (!p)
            throw new BusError(
              'org.freedesktop.DBus.Error.NotSupported',
              'No image pool: cannot start machines',
            );
          return runner.start(p, name);
        },
      },
    },
  };
}
