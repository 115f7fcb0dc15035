import { closeQuietly, read, setNonBlocking, writeAll } from '@sd/sys';
import { ImagePool } from '../images/pool.js';
import { copyFromMachine, copyToMachine, idMapper, machineCopyHelper } from '../transfer/copy.js';
import {
  type CopyRequest,
  decode,
  encode,
  errorToWire,
  type PoolRequest,
  WORKER_CANCEL_FD,
  WORKER_RESULT_FD,
  WORKER_ROOT_FD,
  type WorkerReply,
  type WorkerRequest,
} from './protocol.js';

/** The worker's side: runs one request, writes one reply line, returns the exit status. */

/** True once the daemon has closed the cancel pipe (or died). */
function cancelWatch(): () => boolean {
  setNonBlocking(WORKER_CANCEL_FD);
  const buf = Buffer.alloc(1);
  let gone = false;
  return () => {
    if (gone) return true;
    try {
      gone = read(WORKER_CANCEL_FD, buf) === 0;
    } catch {
      gone = true;
    }
    return gone;
  };
}

async function runCopy(req: CopyRequest, cancelled: () => boolean): Promise<void> {
  // Ids are shifted by the machine's map; one it does not cover becomes nobody.
  const idMap = { direction: req.direction, uids: req.uids };
  // A directory is copied by this process and a copy helper together (transfer/copier.ts).
  const common = {
    replace: req.replace,
    mapId: idMapper(idMap),
    idMap,
    cancelled,
    helper: machineCopyHelper,
  };
  if (req.direction === 'to')
    await copyToMachine(WORKER_ROOT_FD, req.source, req.dest, { ...common, creator: req.creator });
  else await copyFromMachine(WORKER_ROOT_FD, req.source, req.dest, common);
}

async function runPool(req: PoolRequest): Promise<unknown> {
  // The daemon checked names, busy machines and read-only images; the pool checks again here.
  const pool = new ImagePool({ paths: req.paths, parallelCopies: true });
  const a = req.args;
  switch (req.method) {
    case 'remove':
      return pool.remove(String(a[0]));
    case 'clone':
      return pool.cloneWithMethod(String(a[0]), String(a[1]), a[2] === true);
    case 'setLimit':
      return pool.setLimit(String(a[0]), BigInt(a[1] as bigint));
    case 'setPoolLimit':
      return pool.setPoolLimit(BigInt(a[0] as bigint));
  }
}

export async function runWorker(arg: string): Promise<number> {
  let reply: WorkerReply;
  try {
    const req = decode<WorkerRequest>(arg);
    const cancelled = cancelWatch();
    if (req.op === 'copy') {
      await runCopy(req, cancelled);
      reply = { ok: true };
    } else if (req.op === 'pool') reply = { ok: true, value: await runPool(req) };
    else throw new Error(`unknown worker request ${JSON.stringify((req as { op?: unknown }).op)}`);
  } catch (e) {
    reply = { ok: false, error: errorToWire(e) };
  }
  try {
    writeAll(WORKER_RESULT_FD, `${encode(reply)}\n`);
  } catch {
    // The daemon is gone: nobody to tell.
  }
  closeQuietly(WORKER_RESULT_FD);
  return reply.ok ? 0 : 1;
}
