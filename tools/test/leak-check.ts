import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Global setup of the test run: remembers what the machine had before the
 * tests (mounts, loop devices, cgroups, network namespaces, links, nftables
 * tables) and fails the run when the tests left anything new behind.
 */

export type Snapshot = Record<string, Set<string>>;

function lines(path: string): string[] {
  try {
    return readFileSync(path, 'utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

function mounts(): Set<string> {
  return new Set(lines('/proc/self/mountinfo').map((l) => l.split(' ')[4] ?? ''));
}

function loops(): Set<string> {
  const out = new Set<string>();
  for (const dev of readdirSync('/sys/block').filter((d) => d.startsWith('loop'))) {
    const backing = lines(join('/sys/block', dev, 'loop/backing_file'))[0];
    if (backing) out.add(`${dev} -> ${backing}`);
  }
  return out;
}

function cgroups(): Set<string> {
  const out = new Set<string>();
  const root = '/sys/fs/cgroup';
  const walk = (dir: string, depth: number) => {
    if (depth > 6) return;
    let entries: string[];
    try {
      entries = readdirSync(dir, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => e.name);
    } catch {
      return;
    }
    for (const e of entries) {
      const p = join(dir, e);
      // Only cgroups of ours: machine scopes (wherever the scope's parent is) and test groups;
      // the machine's own cgroups come and go with other users of the host.
      if (/^(machine\.slice|machine-.*\.scope|sd-.*)$/.test(e)) out.add(p);
      walk(p, depth + 1);
    }
  };
  walk(root, 0);
  return out;
}

function netns(): Set<string> {
  return new Set(existsSync('/run/netns') ? readdirSync('/run/netns') : []);
}

function links(): Set<string> {
  return new Set(readdirSync('/sys/class/net'));
}

/** nftables tables of the host's network namespace (`nft` checks from outside; tests may use it). */
function nftTables(): Set<string> {
  const r = spawnSync('nft', ['list', 'tables'], { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) return new Set();
  return new Set(r.stdout.split('\n').filter((l) => l.startsWith('table ')));
}

export function snapshot(): Snapshot {
  return {
    mounts: mounts(),
    'loop devices': loops(),
    cgroups: cgroups(),
    'network namespaces': netns(),
    links: links(),
    'nftables tables': nftTables(),
  };
}

/** What `after` has that `before` had not, one line a kind. */
export function diffSnapshots(before: Snapshot, after: Snapshot): string[] {
  const leaks: string[] = [];
  for (const [kind, items] of Object.entries(after)) {
    const b = before[kind] ?? new Set();
    const added = [...items].filter((i) => !b.has(i));
    if (added.length)
      leaks.push(`${kind}: ${added.slice(0, 10).join(', ')}${added.length > 10 ? ', ...' : ''}`);
  }
  return leaks;
}

export default function setup() {
  const before = snapshot();
  return () => {
    const leaks = diffSnapshots(before, snapshot());
    if (leaks.length) {
      // Vitest reports an error thrown here but still exits 0: set the status ourselves.
      process.exitCode = 1;
      process.stdout.write('\ntests: leak check failed, 1 failed\n');
      throw new Error(`leak check: the tests left these behind:\n  ${leaks.join('\n  ')}`);
    }
  };
}
