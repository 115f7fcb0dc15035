import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { machineScopeName } from '@sd/basic';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPTIONS } from '../packages/nspawn/src/settings/argv.js';
import { makeBusyboxTree, sdNspawnAsync } from './lib/trees.js';

// As systemd's TEST-13-NSPAWN does for systemd-nspawn: every option with a bad
// value is refused with one line on stderr and exit status 1, and leaves
// nothing behind (no notify socket, mount, scope, uid lock, or change to
// the tree).

/** A bad value per option, as `--name=value` (or the argv to use). */
const BAD: Record<string, string[]> = {
  directory: ['--directory=/tst-no-such-directory'],
  image: ['--image=/tst-no-such-image.raw'],
  machine: ['--machine=bad!name'],
  hostname: ['--hostname=not valid'],
  uuid: ['--uuid=00000000-0000-0000-0000-000000000000'],
  user: ['--user=tst-nosuch'],
  chdir: ['--chdir=relative'],
  setenv: ['--setenv=1BAD=x'],
  boot: ['--boot=yes'],
  'as-pid2': ['--as-pid2=yes'],
  console: ['--console=tty'],
  pipe: ['--pipe=yes'],
  quiet: ['--quiet=yes'],
  'read-only': ['--read-only=1'],
  ephemeral: ['--ephemeral=1'],
  template: ['--template=relative'],
  volatile: ['--volatile=sometimes'],
  'private-users': ['--private-users=4294967295:2'],
  'private-users-ownership': ['--private-users-ownership=sometimes'],
  'private-users-chown': ['--private-users-chown=yes'],
  'private-network': ['--private-network=yes'],
  register: ['--register=maybe'],
  'keep-unit': ['--keep-unit=yes'],
  'kill-signal': ['--kill-signal=SIGRTMIN+31'],
  capability: ['--capability=CAP_BOGUS'],
  'drop-capability': ['--drop-capability=CAP_BOGUS'],
  'no-new-privileges': ['--no-new-privileges=maybe'],
  'system-call-filter': ['--system-call-filter=tst_no_such_call'],
  'resolv-conf': ['--resolv-conf=sometimes'],
  timezone: ['--timezone=sometimes'],
  'notify-ready': ['--notify-ready=maybe'],
  bind: ['--bind=relative/path'],
  'bind-ro': ['--bind-ro=/tst-no-such-source:/x'],
  tmpfs: ['--tmpfs=relative'],
  overlay: ['--overlay=/a'],
  'overlay-ro': ['--overlay-ro=/a'],
  inaccessible: ['--inaccessible=/tst-not-in-the-tree'],
  settings: ['--settings=maybe'],
  'network-veth': ['--network-veth=yes'],
  'network-veth-extra': ['--network-veth-extra=a:b:c:d'],
  'network-bridge': ['--network-bridge='],
  'network-zone': ['--network-zone=bad/zone'],
  'network-interface': ['--network-interface=tst-no-such-if'],
  'network-macvlan': ['--network-macvlan=tst-no-such-if'],
  'network-ipvlan': ['--network-ipvlan=tst-no-such-if'],
  'network-namespace-path': ['--network-namespace-path=/tst-no-such-netns'],
  port: ['--port=tcp:99999'],
};

let tree: ReturnType<typeof makeBusyboxTree>;
let before: string[];
beforeAll(() => {
  tree = makeBusyboxTree('tst-inval-');
  before = readdirSync(tree.dir, { recursive: true }).map(String).sort();
});
afterAll(() => tree?.remove());

function leftOf(name: string): string[] {
  const left: string[] = [];
  if (existsSync('/run/sd-nspawn'))
    left.push(...readdirSync('/run/sd-nspawn').filter((f) => f.startsWith(`${name}.`)));
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8');
  if (mounts.includes(`/run/sd-nspawn/${name}.`) || mounts.includes(tree.dir)) left.push('a mount');
  for (const line of readFileSync('/proc/self/cgroup', 'utf8').trim().split('\n')) {
    const [, ctrl, path] = line.split(':') as [string, string, string];
    const base = ctrl === '' ? '/sys/fs/cgroup/unified' : `/sys/fs/cgroup/${ctrl.replace(/^name=/, '')}`;
    const scope = `${base}${path.replace(/\/$/, '')}/machine.slice/${machineScopeName(name)}`;
    if (existsSync(scope)) left.push(scope);
  }
  return left;
}

describe('every option refuses a bad value cleanly', () => {
  it('the table covers every option sd-nspawn has', () => {
    expect(Object.keys(BAD).sort()).toEqual(OPTIONS.map((o) => o.long).sort());
  });

  it('one line on stderr, exit 1, nothing on stdout, nothing left behind', async () => {
    const entries = Object.entries(BAD);
    const results: Array<{
      opt: string;
      code: number | null;
      stdout: string;
      stderr: string;
      left: string[];
    }> = [];
    // Four at a time: each has its own machine name, so they cannot meet.
    for (let i = 0; i < entries.length; i += 4) {
      const batch = entries.slice(i, i + 4).map(async ([opt, argv], j) => {
        const name = `tst-inval-${i + j}`;
        const dir = opt === 'directory' || opt === 'image' ? [] : ['-D', tree.dir];
        const machine = opt === 'machine' ? [] : [`--machine=${name}`];
        const r = await sdNspawnAsync(['-q', ...dir, ...machine, ...argv, 'true']);
        return { opt, ...r, left: leftOf(name) };
      });
      results.push(...(await Promise.all(batch)));
    }
    for (const r of results) {
      const what = `--${r.opt}: ${JSON.stringify(r.stderr)}`;
      expect(r.code, what).toBe(1);
      expect(r.stdout, what).toBe('');
      expect(r.stderr, what).toMatch(/^sd-nspawn: [^\n]+\n$/);
      expect(r.left, what).toEqual([]);
    }
    const after = readdirSync(tree.dir, { recursive: true }).map(String).sort();
    expect(after.filter((f) => !before.includes(f))).toEqual([]);
    expect(before.filter((f) => !after.includes(f))).toEqual([]);
  });

  it('unknown options and missing arguments the same way', async () => {
    for (const argv of [['--tst-bogus'], ['-Z'], ['--machine'], ['-D']]) {
      const r = await sdNspawnAsync(argv);
      expect(r.code, argv.join(' ')).toBe(1);
      expect(r.stderr, argv.join(' ')).toMatch(/^sd-nspawn: [^\n]+\n$/);
    }
  });
});
