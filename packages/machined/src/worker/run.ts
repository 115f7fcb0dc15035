import { closeQuietly, read, setNonBlocking, writeAll } from '@sd/sys';
import { ImagePool } from '../images/pool.js';
import { mapIn, mapOut } from '../inspect/uid-map.js';
import { copyFromMachine, copyToMachine } from '../transfer/copy.js';
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

function runCopy(req: CopyRequest, cancelled: () => boolean): void {
  const uids = req.uids;
  if (req.direction === 'to')
    copyToMachine(WORKER_ROOT_FD, req.source, req.dest, {
      replace: req.replace,
      // Ids are shifted by the machine's map; one it does not cover becomes nobody.
      mapId: (id) => mapOut(uids, id) ?? mapOut(uids, 65534) ?? 65534,
      creator: req.creator,
      cancelled,
    });
  else
    copyFromMachine(WORKER_ROOT_FD, req.source, req.dest, {
      replace: req.replace,
      mapId: (id) => mapIn(uids, id) ?? 65534,
      cancelled,
    });
}

async function runPool(req: PoolRequest): Promise<unknown> {
  // The daemon checked names, busy machines and read-only images; the pool checks again here.
  const pool = new ImagePool({ paths: req.paths });
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
      runCopy(req, cancelled);
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
