import { AT, type JobRunner, statxFull } from '@sd/sys';
import { Copier, type MachineJob } from './copier.js';
import { idMapper } from './ids.js';

/**
 * The machine copy's job for the @sd/sys copy helper process: a subtree
 * below the top of a CopyToMachine / CopyFromMachine, copied by the same
 * Copier as in the worker (copier.ts hands it out). The helper imports
 * this module by its URL (COPY_JOBS_MODULE).
 */

/** How many checks between looks at whether the caller went away (a syscall each). */
const ABORT_EVERY = 64;

export const copyJobs: Record<string, JobRunner> = {
  machine(args, fds, aborted) {
    const job = args as MachineJob;
    let n = 0;
    const c = new Copier({
      replace: false,
      mapId: idMapper(job.idMap),
      creator: job.creator,
      crossFileSystems: job.crossFileSystems,
      cancelled: () => ++n % ABORT_EVERY === 0 && aborted(),
    });
    c.rootDev = job.rootDev;
    c.creation = job.creation;
    const [src, out] = fds as [number, number];
    const st = statxFull(src, '', AT.EMPTY_PATH);
    c.children({ dirFd: src, fd: src, name: '.', path: job.path }, out, job.dstPath, (child, cst, to) =>
      c.make(child, cst, to),
    );
    c.finish(out, st, job.dstPath, 0o700);
  },
};

/** This module, as the helper is told to load it: the .ts from source, the bundle's .js when built. */
export const COPY_JOBS_MODULE = import.meta.url.endsWith('.ts')
  ? import.meta.url
  : new URL('./copy-jobs.js', import.meta.url).href;
