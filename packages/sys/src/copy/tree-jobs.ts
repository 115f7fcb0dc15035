import { AT } from '../constants.js';
import type { JobRunner } from './helper-wire.js';
import { statxFull } from './stat.js';
import type { TreeEnd, TreeJob } from './tree.js';
import { type Ctx, copyDir, finishFd, newCtx } from './tree-walk.js';

/** copyTree's jobs as the helper process runs them (tree.ts hands them out). */

const sessions = new Map<string, Ctx>();

/** How many entries between looks at whether the caller went away (a syscall each). */
const ABORT_EVERY = 64;

export const treeJobs: Record<string, JobRunner> = {
  async tree(args, fds, aborted) {
    const job = args as TreeJob;
    let ctx = sessions.get(job.session);
    if (!ctx) {
      ctx = newCtx(job.options);
      ctx.creation = job.creation;
      ctx.groups = new Map();
      sessions.set(job.session, ctx);
    }
    let n = 0;
    ctx.aborted = () => ++n % ABORT_EVERY === 0 && aborted();
    const [s, d] = fds as [number, number];
    const st = statxFull(s, '', AT.EMPTY_PATH);
    try {
      await copyDir(ctx, s, d, job.path, job.dstPath);
    } finally {
      while (ctx.inflight.size > 0) await Promise.race(ctx.inflight);
    }
    if (ctx.failure !== undefined) throw ctx.failure;
    finishFd(ctx, s, d, st, job.path, 0o700);
    ctx.stats.directories++;
  },
  'tree-end'(args): TreeEnd {
    const { session } = args as { session: string };
    const ctx = sessions.get(session);
    sessions.delete(session);
    if (!ctx)
      return {
        stats: { directories: 0, files: 0, symlinks: 0, specials: 0, hardlinks: 0, bytes: 0n, reflinked: 0 },
        groups: [],
      };
    return { stats: ctx.stats, groups: [...(ctx.groups ?? [])] };
  },
};
