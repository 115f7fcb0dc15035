import {
  close,
  closeQuietly,
  exitCodeOf,
  MS,
  pipe,
  read,
  SpawnProgram,
  spawn,
} from '../../packages/sys/src/index.js';
import {
  ALL_NAMESPACES,
  pivotInto,
  privatizeMounts,
  readOnly,
  usrMergeLinks,
  writeIdMaps,
} from '../lib/container.js';

/**
 * Smoke test of @sd/sys: the host's own /bin/sh in new user, mount, pid, uts,
 * ipc, net and cgroup namespaces, in an empty tmpfs root with /usr bound
 * read-only, prints its pid ($$ = 1), hostname and uid (0). Exit 0 when all
 * three are as expected.
 */

const HOSTNAME = 'sd-smoke';
// Container uid 0..65535 on an unused host range, like systemd-nspawn -U picks.
const UID_BASE = 0x7ffe0000;
// The tmpfs goes over /tmp in the child's own mount namespace; the host's /tmp is untouched.
const ROOT = '/tmp';

async function main(): Promise<number> {
  const [outRead, outWrite] = pipe();
  let writeEnd: number | undefined = outWrite;
  try {
    const p = new SpawnProgram();
    // After the maps exist, become the namespace's root (host UID_BASE):
    // files made as the host's root would have no uid inside (EOVERFLOW).
    p.stdio([0, outWrite, 2]).waitForParent().setgroups([]).setresgid(0).setresuid(0);
    privatizeMounts(p)
      .mount('sd-smoke', ROOT, 'tmpfs', MS.NOSUID | MS.NODEV, 'mode=0755')
      .mkdir(`${ROOT}/usr`)
      .mount('/usr', `${ROOT}/usr`, null, MS.BIND | MS.REC);
    readOnly(p, `${ROOT}/usr`);
    for (const [name, target] of usrMergeLinks()) p.symlink(target, `${ROOT}/${name}`);
    p.mkdir(`${ROOT}/proc`).mount('proc', `${ROOT}/proc`, 'proc', MS.NOSUID | MS.NODEV | MS.NOEXEC);
    pivotInto(p, ROOT)
      .sethostname(HOSTNAME)
      .resetSignals()
      .execve(
        '/bin/sh',
        ['sh', '-c', 'echo "pid=$$ hostname=$(hostname) uid=$(id -u)"'],
        ['PATH=/usr/bin:/usr/sbin:/bin:/sbin', 'LANG=C'],
      );

    const child = await spawn(p, {
      cloneFlags: ALL_NAMESPACES,
      beforeRun: (c) => writeIdMaps(c.pid, 0, UID_BASE, 65536),
    });
    close(outWrite);
    writeEnd = undefined;
    const status = await child.exited;

    const chunks: Buffer[] = [];
    const buf = Buffer.alloc(4096);
    for (let n = read(outRead, buf); n > 0; n = read(outRead, buf))
      chunks.push(Buffer.from(buf.subarray(0, n)));
    const output = Buffer.concat(chunks).toString().trim();
    process.stdout.write(`${output}\n`);

    const expected = `pid=1 hostname=${HOSTNAME} uid=0`;
    if (exitCodeOf(status) !== 0) {
      process.stderr.write(`smoke: /bin/sh exited with status ${exitCodeOf(status)}\n`);
      return 1;
    }
    if (output !== expected) {
      process.stderr.write(`smoke: expected "${expected}"\n`);
      return 1;
    }
    process.stdout.write('smoke: ok\n');
    return 0;
  } finally {
    closeQuietly(outRead, writeEnd);
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`smoke: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  },
);
