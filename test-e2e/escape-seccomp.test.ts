import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { findSyscallNumber, lastCap, NSPAWN_DEFAULT_CAPABILITIES } from '@sd/sys';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBus, manager, startDaemon } from '../packages/machined/test/helpers.js';
import { startPrivateBus } from '../tools/dbus/private-bus.js';
import { sdNspawn, sdNspawnAsync } from './lib/trees.js';

// Escapes root inside a container tried against the real kernel, in the
// Debian tree (util-linux, perl), WITHOUT -U where the kernel refuses little
// on its own, and with -U: the seccomp allow-list (fanotify, io_uring,
// userfaultfd), the device policy of the machine's cgroup (a host loop
// device made here, by mknod and through a planted 0666 node), and the
// classic probes of the old escape test. With and without registration.

const BUILD = fileURLToPath(new URL('../tools/debian-tree/build.sh', import.meta.url));
let tree = '';
let dir = '';
let loop = '';
let loopMinor = 0;

beforeAll(() => {
  tree = execFileSync(BUILD, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 20 * 60_000,
  }).trim();
  dir = mkdtempSync('/tmp/sd-seccomp-escape.');
  chmodSync(dir, 0o755);
  writeFileSync(`${dir}/disk.img`, Buffer.alloc(1 << 20, 0x5a));
  loop = execFileSync('losetup', ['-f', '--show', `${dir}/disk.img`], { encoding: 'utf8' }).trim();
  loopMinor = Number(loop.replace('/dev/loop', ''));
  // A node planted where the container can reach it, open to anyone by its mode:
  // only the device policy stands between it and the host's loop device.
  execFileSync('mknod', ['-m', '0666', `${dir}/planted`, 'b', '7', String(loopMinor)]);
}, 20 * 60_000);

afterAll(() => {
  if (loop) execFileSync('losetup', ['-d', loop]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const nr = (name: string) => {
  const n = findSyscallNumber(name);
  if (n === undefined) throw new Error(`no ${name} here`);
  return n;
};

/** perl (in the Debian tree) makes raw calls and prints NAME=ok or NAME=<errno>. */
function syscallProbe(): string {
  const perl = `
sub p { my ($n, $r) = @_; print "$n=", ($r < 0 ? 0 + $! : "ok"), "\\n"; }
my $fd = syscall(${nr('fanotify_init')}, 0, 0);
p("fanotify_init", $fd);
my $root = "/";
p("fanotify_mark", syscall(${nr('fanotify_mark')}, $fd, 0x101, 0x20, -100, $root));
my $params = "\\0" x 120;
p("io_uring_setup", syscall(${nr('io_uring_setup')}, 1, $params));
p("userfaultfd", syscall(${nr('userfaultfd')}, 0));
my $handle = pack("LL", 8, 1) . ("\\0" x 8);
p("open_by_handle_at", syscall(${nr('open_by_handle_at')}, -100, $handle, 0));
p("statmount", syscall(${nr('statmount')}, 0, 0, 0, 0));
p("netlink_audit", syscall(${nr('socket')}, 16, 3, 9));
p("netlink_route", syscall(${nr('socket')}, 16, 3, 0));
my $empty = "";
p("finit_module", syscall(${nr('finit_module')}, 0, $empty, 0));
`;
  return `perl -e '${perl.replace(/'/g, `'"'"'`)}'`;
}

/** The device probes: mknod of the host's loop device, the planted node, /dev/net/tun. */
function deviceProbe(): string {
  return [
    `mknod /dev/sec-loop b 7 ${loopMinor} 2>/dev/null && echo mknod=ok || echo mknod=refused`,
    `head -c 1 /dev/sec-loop >/dev/null 2>&1 && echo open-made=ok || echo open-made=refused`,
    `head -c 1 /mnt/planted 2>&1 >/dev/null | grep -q . && echo planted=refused || echo planted=ok`,
    `head -c 1 /mnt/planted 2>&1 >/dev/null | grep -o "Operation not permitted" | sed "s/^/planted-error=/"`,
    `(exec 3<>/dev/net/tun) 2>/dev/null && echo tun=ok || echo tun=refused`,
  ].join('\n');
}

function nspawn(name: string, userns: boolean, script: string, extra: string[] = []) {
  return sdNspawn([
    '-q',
    '-D',
    tree,
    '--volatile=state',
    `--machine=${name}`,
    `--bind-ro=${dir}:/mnt`,
    ...(userns ? ['-U'] : ['--private-users=no']),
    ...extra,
    '/bin/sh',
    '-c',
    script,
  ]);
}

const fields = (out: string) =>
  Object.fromEntries(
    out
      .split('\n')
      .filter((l) => /^[\w-]+=/.test(l))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );

describe.each([
  ['without -U', false],
  ['with -U', true],
])('root in a container %s', (_, userns) => {
  const tag = userns ? 'u' : 'n';

  it('gets EPERM for fanotify, io_uring, userfaultfd, open_by_handle_at, finit_module', () => {
    const r = nspawn(`sec-sys-${tag}`, userns, syscallProbe());
    expect(r.code, r.stderr).toBe(0);
    expect(fields(r.stdout)).toEqual({
      fanotify_init: '1',
      fanotify_mark: '1',
      io_uring_setup: '1',
      userfaultfd: '1',
      open_by_handle_at: '1',
      finit_module: '1',
      // Newer than systemd's list of calls: ENOSYS, so that callers fall back.
      statmount: '38',
      // Audit is not namespaced: EAFNOSUPPORT, as systemd-nspawn does; other netlink sockets work.
      netlink_audit: '97',
      netlink_route: 'ok',
    });
  });

  it('can neither make nor open a host loop device; /dev/net/tun opens', () => {
    const r = nspawn(`sec-dev-${tag}`, userns, deviceProbe());
    expect(r.code, r.stderr).toBe(0);
    const f = fields(r.stdout);
    expect(f.mknod).toBe('refused');
    expect(f['open-made']).toBe('refused');
    expect(f.planted).toBe('refused');
    expect(f['planted-error']).toBe('Operation not permitted');
    // The host's node is root's, mode 0600: the unmapped root of -U may not open it.
    if (!userns) expect(f.tun).toBe('ok');
  });
});

describe('the classic escapes, with --private-users=no (the kernel refuses little here on its own)', () => {
  it('are stopped by sd-nspawn: seccomp mode 2, the bounding set, pid namespace, masks, devices', () => {
    const r = nspawn(
      'sec-classic',
      false,
      [
        'grep -E "^(Seccomp|CapBnd):" /proc/self/status | tr -d "\\t" | tr ":" "="',
        // Issue 14 owns this hole: reported, not asserted.
        'mount -o remount,rw /proc/sys 2>/dev/null; cat /proc/sys/vm/swappiness > /proc/sys/vm/swappiness 2>/dev/null && echo sysctl=written || echo sysctl=refused',
        'test -e /proc/sysrq-trigger && { echo h > /proc/sysrq-trigger 2>/dev/null && echo sysrq=written || echo sysrq=refused; } || echo sysrq=absent',
        `kill -0 ${process.pid} 2>/dev/null && echo host-pid=reached || echo host-pid=refused`,
        'grep -m1 -v "^0000000000000000" /proc/kallsyms >/dev/null 2>&1 && echo kallsyms=addresses || echo kallsyms=hidden',
        // Root here has CAP_SYS_ADMIN: it mounts the devices hierarchy and tries to open it up.
        `mkdir -p /run/cg && mount -t cgroup -o devices none /run/cg 2>/dev/null && { for l in a "b 7:${loopMinor} rwm" "b *:* rwm"; do echo "$l" > /run/cg/devices.allow 2>/dev/null && echo "devices-widened=$l"; done; echo devices-allow=tried; } || echo devices-allow=no-v1`,
        syscallProbe(),
        deviceProbe(),
      ].join('\n'),
    );
    expect(r.code, r.stderr).toBe(0);
    const f = fields(r.stdout);
    // systemd-nspawn's set, as far as our own bounding set still has it.
    const ours = BigInt(`0x${/^CapBnd:\s*(\w+)/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]}`);
    const bounding = NSPAWN_DEFAULT_CAPABILITIES & ((1n << BigInt(lastCap() + 1)) - 1n) & ours;
    expect(f.Seccomp).toBe('2');
    expect(BigInt(`0x${f.CapBnd}`)).toBe(bounding);
    expect(f['host-pid']).toBe('refused');
    expect(f.kallsyms).toBe('hidden');
    expect(['tried', 'no-v1']).toContain(f['devices-allow']);
    expect(f['devices-widened']).toBeUndefined();
    expect([f.fanotify_init, f.fanotify_mark, f.io_uring_setup, f.userfaultfd, f.finit_module]).toEqual([
      '1',
      '1',
      '1',
      '1',
      '1',
    ]);
    expect([f.mknod, f['open-made'], f.planted, f.tun]).toEqual(['refused', 'refused', 'refused', 'ok']);
    console.log(`classic probes: sysctl=${f.sysctl} sysrq=${f.sysrq} devices-allow=${f['devices-allow']}`);
  });
});

describe('devices bound in with --bind', () => {
  it('are allowed as systemd-nspawn allows them: rw for --bind, r for --bind-ro', () => {
    const script = [
      'head -c 1 /dev/sec-rw >/dev/null 2>&1 && echo read-rw=ok || echo read-rw=refused',
      'printf Z | dd of=/dev/sec-rw bs=1 count=1 conv=notrunc 2>/dev/null && echo write-rw=ok || echo write-rw=refused',
      `head -c 1 /mnt/planted >/dev/null 2>&1 && echo planted=ok || echo planted=refused`,
    ].join('\n');
    const r = nspawn('sec-bind-dev', false, script, [`--bind=${loop}:/dev/sec-rw`]);
    expect(fields(r.stdout), r.stderr).toEqual({ 'read-rw': 'ok', 'write-rw': 'ok', planted: 'ok' });
    const ro = nspawn('sec-bind-dev', false, script.replaceAll('sec-rw', 'sec-ro'), [
      `--bind-ro=${loop}:/dev/sec-ro`,
    ]);
    expect(fields(ro.stdout), ro.stderr).toEqual({ 'read-rw': 'ok', 'write-rw': 'refused', planted: 'ok' });
  });
});

describe('--system-call-filter', () => {
  it('~@mount denies the mount calls; naming a withheld call allows it again', () => {
    const script = [
      'mkdir -p /run/x && mount -t tmpfs none /run/x 2>/dev/null && echo mount=ok || echo mount=refused',
      `perl -e 'print "userfaultfd=", (syscall(${nr('userfaultfd')}, 0) < 0 ? 0 + $! : "ok"), "\\n"'`,
    ].join('\n');
    let f = fields(nspawn('sec-scf-a', false, script).stdout);
    expect(f).toEqual({ mount: 'ok', userfaultfd: '1' });
    const r = nspawn('sec-scf-b', false, script, [
      '--system-call-filter=~@mount',
      '--system-call-filter=userfaultfd',
    ]);
    f = fields(r.stdout);
    expect(f, r.stderr).toEqual({ mount: 'refused', userfaultfd: 'ok' });
    const bad = nspawn('sec-scf-c', false, 'true', ['--system-call-filter=@nonsense']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/unknown system call group '@nonsense'/);
  });
});

describe('a registered machine', () => {
  it('keeps the seccomp filter and the device policy (with and without -U)', async () => {
    const bus = await startPrivateBus();
    const state = mkdtempSync('/tmp/sd-seccomp-machined.');
    const client = await connectBus(bus.address);
    const daemon = await startDaemon(bus.env, state, client);
    try {
      for (const userns of [false, true]) {
        const name = `sec-reg-${userns ? 'u' : 'n'}`;
        const run = sdNspawnAsync(
          [
            '-D',
            tree,
            '--volatile=state',
            `--machine=${name}`,
            `--bind-ro=${dir}:/mnt`,
            '--register=yes',
            ...(userns ? ['-U'] : ['--private-users=no']),
            '/bin/sh',
            '-c',
            `sleep 2; ${syscallProbe()}; ${deviceProbe()}`,
          ],
          60_000,
          bus.env,
        );
        let listed = false;
        for (let i = 0; i < 40 && !listed; i++) {
          const [machines] = (await manager(client, 'ListMachines')) as [Array<[string]>];
          listed = machines.some((m) => m[0] === name);
          if (!listed) await new Promise((res) => setTimeout(res, 50));
        }
        const r = await run;
        expect(listed, r.stderr).toBe(true);
        expect(r.code, r.stderr).toBe(0);
        const f = fields(r.stdout);
        expect([f.fanotify_init, f.fanotify_mark, f.io_uring_setup, f.userfaultfd]).toEqual([
          '1',
          '1',
          '1',
          '1',
        ]);
        expect([f.mknod, f['open-made'], f.planted]).toEqual(['refused', 'refused', 'refused']);
        expect(f['planted-error']).toBe('Operation not permitted');
      }
    } finally {
      await daemon.stop();
      client.disconnect();
      await bus.stop();
      rmSync(state, { recursive: true, force: true });
    }
  });
});
