import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * The attack list of issue 14 (attacks.sh) as a runner: the probe and a host
 * marker prepared, the container started by a caller-given command line, its
 * report parsed, and the host's tunables compared before and after. Used by
 * test-e2e/escape-attacks.test.ts and tools/escape/compare.ts (the same list
 * against systemd-nspawn).
 */

export const ATTACKS_SH = fileURLToPath(new URL('./attacks.sh', import.meta.url));

export interface Attempt {
  name: string;
  result: 'refused' | 'absent' | 'SUCCEEDED';
  detail: string;
}

export interface AttackRun {
  attempts: Attempt[];
  /** The probe ran to its end. */
  complete: boolean;
  code: number | null;
  stdout: string;
  stderr: string;
  /** Host state that changed during the run (should be empty). */
  hostChanges: string[];
}

/** Host tunables the list touches (same-value writes) and traces it could leave. */
function hostState(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of [
    '/proc/sys/kernel/core_pattern',
    '/proc/sys/vm/swappiness',
    '/proc/sys/kernel/sysrq',
    '/proc/sys/kernel/modprobe',
    '/sys/kernel/uevent_helper',
    '/sys/kernel/mm/transparent_hugepage/enabled',
  ])
    if (existsSync(f)) out[f] = readFileSync(f, 'utf8');
  out.cgroupHierarchies = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.includes('sdattack'))
    .join('\n');
  return out;
}

/** MAJ:MIN of the block device holding the host's root file system. */
export function hostRootDevice(): string {
  const dev = statSync('/').dev;
  const major = ((dev >>> 8) & 0xfff) | (Math.floor(dev / 2 ** 32) & ~0xfff);
  const minor = (dev & 0xff) | ((dev >>> 12) & 0xfff00);
  return `${major}:${minor}`;
}

export function parseAttempts(stdout: string): Attempt[] {
  return stdout
    .split('\n')
    .map((l) => l.split('\t'))
    .filter((f) => f.length >= 2 && ['refused', 'absent', 'SUCCEEDED'].includes(f[1]!))
    .map(([name, result, detail]) => ({
      name: name!,
      result: result as Attempt['result'],
      detail: (detail ?? '').trim(),
    }));
}

/**
 * Runs the list: `command(dir, env)` returns the argv (program first) that
 * starts a container of the Debian tree with `dir` bound read-only on /mnt
 * and `env` set, running `/bin/sh /mnt/attacks.sh` as root.
 */
export function runAttackList(
  command: (dir: string, env: Record<string, string>) => string[],
  timeout = 120_000,
): AttackRun {
  const dir = mkdtempSync('/tmp/secure-attacks.');
  chmodSync(dir, 0o755);
  copyFileSync(ATTACKS_SH, `${dir}/attacks.sh`);
  // A host file the tree does not have: seeing it means a chroot break-out reached the host.
  const marker = `/run/secure-attack-marker.${process.pid}`;
  writeFileSync(marker, '');
  const env = { HOSTPID: String(process.pid), ROOTDEV: hostRootDevice(), MARKER: marker };
  const before = hostState();
  try {
    const [prog, ...args] = command(dir, env);
    const r = spawnSync(prog!, args, { encoding: 'utf8', timeout, stdio: ['ignore', 'pipe', 'pipe'] });
    const after = hostState();
    const hostChanges = Object.keys({ ...before, ...after }).filter((k) => before[k] !== after[k]);
    return {
      attempts: parseAttempts(r.stdout ?? ''),
      complete: /^END$/m.test(r.stdout ?? ''),
      code: r.status,
      stdout: r.stdout ?? '',
      stderr: r.stderr ?? '',
      hostChanges,
    };
  } finally {
    rmSync(marker, { force: true });
    rmSync(dir, { recursive: true, force: true });
  }
}

export function formatAttempts(attempts: readonly Attempt[]): string {
  const w = Math.max(...attempts.map((a) => a.name.length));
  return attempts.map((a) => `${a.name.padEnd(w)}  ${a.result.padEnd(9)}  ${a.detail}`).join('\n');
}
