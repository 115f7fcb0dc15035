// The copy helper process (helper.ts): runs the copy jobs it is sent on fd
// 3, one at a time, answering each; exits when the socket closes. argv
// names modules whose `copyJobs` add job kinds. Not a command for people.
import { closeQuietly } from '../fd/fd.js';
import { receivedFds } from '../net/cmsg.js';
import { MSG } from '../net/sockaddr.js';
import { recvmsg, sendmsg } from '../net/socket.js';
import { decodeWire, encodeWire, errorToWire } from '../wire.js';
import { HELPER_SOCKET_FD, type Job, type JobReply, type JobRunner } from './helper-wire.js';
import { treeJobs } from './tree-jobs.js';

const fd = HELPER_SOCKET_FD;

/** True once our end's peer has gone (the caller aborted or died): a running job stops. */
function peerGone(): boolean {
  try {
    const m = recvmsg(fd, { size: 1, controlSize: 0, flags: MSG.PEEK | MSG.DONTWAIT });
    return m !== null && m.length === 0;
  } catch {
    return true;
  }
}

async function main(): Promise<void> {
  const kinds: Record<string, JobRunner> = { ...treeJobs };
  for (const m of process.argv.slice(2)) {
    const mod = (await import(m)) as { copyJobs?: Record<string, JobRunner> };
    Object.assign(kinds, mod.copyJobs);
  }
  for (;;) {
    const m = recvmsg(fd, { size: 64 * 1024, controlSize: 256 });
    if (m === null) continue;
    if (m.length === 0) return;
    const fds = receivedFds(m.control);
    let reply: JobReply;
    let id = 0;
    try {
      const job = decodeWire<Job>(m.data.toString('utf8'));
      id = job.id;
      const run = kinds[job.kind];
      if (!run) throw new Error(`unknown copy job '${job.kind}'`);
      reply = { id, ok: true, value: await run(job.args, fds, peerGone) };
    } catch (e) {
      reply = { id, ok: false, error: errorToWire(e) };
    } finally {
      closeQuietly(...fds);
    }
    try {
      sendmsg(fd, { data: Buffer.from(encodeWire(reply)) });
    } catch {
      return;
    }
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`copy helper: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
