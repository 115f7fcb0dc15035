import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closeQuietly } from '@sd/sys';
import type { MessageBus } from '../src/index.js';
import { manager, readPty, startNspawn, waitFor } from './helpers.js';

/**
 * Root inside a container hunting for a process more privileged than
 * itself (the review's `machinectl shell` hijack), in plain POSIX sh so
 * that busybox's ash and Debian's dash both run it. For every process it
 * has not seen under that name (pid + comm: a process is looked at again
 * after it execs) it compares CapBnd, Seccomp, NoNewPrivs, its namespaces
 * and its root with its own, and opens /proc/PID/mem for writing, which
 * needs ptrace access to the process (nothing is written: on a process
 * that shares sd-machined's memory a write would corrupt the daemon). A
 * process that differs is logged as PRIV: root inside could have attacked
 * it. Everything goes to /mnt/log.
 */
export const WATCHER = `#!/bin/sh
trap 'exit 0' TERM INT
readst() {
  BND=; SEC=; NNP=
  while read -r k v rest; do
    case $k in CapBnd:) BND=$v;; Seccomp:) SEC=$v;; NoNewPrivs:) NNP=$v;; esac
  done < "$1"
}
nsof() {
  NS=
  for n in user mnt uts ipc net cgroup pid; do NS="$NS $(readlink /proc/$1/ns/$n 2>/dev/null)"; done
}
readst /proc/$$/status
MYBND=$BND; MYSEC=$SEC; MYNNP=$NNP
nsof $$; MYNS=$NS
MYROOT=$(stat -L -c %d:%i /proc/$$/root/)
seen=" "
: > /mnt/log
echo "self bnd=$MYBND seccomp=$MYSEC nnp=$MYNNP ns=$MYNS" >> /mnt/log
echo ready > /mnt/ready
while :; do
  for d in /proc/[0-9]*; do
    p=\${d#/proc/}
    comm=
    read -r comm < $d/comm 2>/dev/null || continue
    case "$seen" in *" $p:$comm "*) continue;; esac
    readst $d/status 2>/dev/null
    [ -n "$BND" ] || continue
    why=
    [ "$BND" = "$MYBND" ] || why="$why capbnd=$BND"
    [ "$SEC" = "$MYSEC" ] || why="$why seccomp=$SEC"
    [ "$NNP" = "$MYNNP" ] || why="$why nnp=$NNP"
    nsof $p; [ "$NS" = "$MYNS" ] || why="$why ns=$NS"
    r=$(stat -L -c %d:%i $d/root/ 2>/dev/null); [ "$r" = "$MYROOT" ] || why="$why root=$r"
    mem=no; if { : >> $d/mem; } 2>/dev/null; then mem=yes; fi
    # A process that ended while it was looked at is not counted.
    [ -e $d/status ] || continue
    seen="$seen$p:$comm "
    echo "seen $p comm=$comm mem=$mem" >> /mnt/log
    [ -z "$why" ] || echo "PRIV $p comm=$comm mem=$mem$why" >> /mnt/log
  done
done
`;

/** A directory bound at /mnt in a container, holding the watcher and its log. */
export function makeWatchDir(): { dir: string; log: () => string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'sd-enter-watch-'));
  chmodSync(dir, 0o777);
  writeFileSync(join(dir, 'watch.sh'), WATCHER, { mode: 0o755 });
  return {
    dir,
    log: () => (existsSync(join(dir, 'log')) ? readFileSync(join(dir, 'log'), 'utf8') : ''),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Starts a container whose PID 1 is the watcher, and waits until it is registered and watching. */
export async function startWatchedContainer(
  env: NodeJS.ProcessEnv,
  client: MessageBus,
  name: string,
  watch: { dir: string },
  args: string[],
): Promise<ReturnType<typeof startNspawn>> {
  const n = startNspawn(env, [
    ...args,
    '-M',
    name,
    '--private-network',
    `--bind=${watch.dir}:/mnt`,
    '/bin/sh',
    '/mnt/watch.sh',
  ]);
  const names = async () => ((await manager(client, 'ListMachines'))[0] as unknown[][]).map((r) => r[0]);
  await waitFor(
    name,
    async () => (await names()).includes(name) && existsSync(join(watch.dir, 'ready')),
    60_000,
  ).catch((e) => {
    throw new Error(`${(e as Error).message}: ${n.output()}`);
  });
  return n;
}

/** OpenMachineShell with a command; resolves with what it wrote to the pty. */
export async function runShell(
  client: MessageBus,
  name: string,
  script: string,
  ms = 20_000,
): Promise<string> {
  const [fd] = (await manager(client, 'OpenMachineShell', 'sssasas', [
    name,
    'root',
    '/bin/sh',
    ['sh', '-c', script],
    [],
  ])) as [number, string];
  try {
    return await readPty(fd, ms);
  } finally {
    closeQuietly(fd);
  }
}

/** The fields of /proc/PID/status lines that `grep -H` printed for `file`. */
export function statusOf(out: string, file: string): Record<string, string> {
  const r: Record<string, string> = {};
  for (const line of out.split(/\r?\n/)) {
    if (!line.startsWith(`${file}:`)) continue;
    const m = /^[^:]+:([A-Za-z]+):\s*(\S+)/.exec(line);
    if (m) r[m[1]!] = m[2]!;
  }
  return r;
}
