import { existsSync, mkdirSync, mkdtempSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closeQuietly } from '@sd/sys';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PrivateBus, startPrivateBus } from '../../../tools/dbus/private-bus.js';
import type { MessageBus } from '../src/index.js';
import { makeWatchDir, runShell, startWatchedContainer, statusOf } from './enter-lib.js';
import { canRun, connectBus, type Daemon, makeTree, manager, startDaemon, stopNspawn } from './helpers.js';

// The `machinectl shell` hijack of the security review, as a regression
// test: root inside the container watches /proc while OpenMachineShell
// runs a shell in it, and must never see a process more privileged than
// itself. Then the shell's own status: the leader's bounding set, seccomp
// filter, no_new_privs, cgroup and user namespace.

const DEBIAN = '/var/cache/sd-test/debian-bookworm';
const skip = canRun();
let bus: PrivateBus;
let client: MessageBus;
let daemon: Daemon;
let root: string;
const cleanup: Array<() => unknown> = [];

beforeAll(async () => {
  if (skip) return;
  bus = await startPrivateBus();
  root = mkdtempSync(join(tmpdir(), 'sd-enter-root-'));
  client = await connectBus(bus.address);
  daemon = await startDaemon(bus.env, root, client);
}, 60_000);

afterAll(async () => {
  if (skip) return;
  for (const c of cleanup.reverse()) await c();
  await daemon?.stop();
  client?.disconnect();
  await bus?.stop();
  rmSync(root, { recursive: true, force: true });
}, 60_000);

interface Case {
  name: string;
  /** sd-nspawn's arguments for the tree. */
  args: () => string[];
  userns: boolean;
  skip?: string | undefined;
}

const cases: Case[] = [
  { name: 'enter-bb', args: () => [...treeArgs(), '--private-users=no'], userns: false },
  { name: 'enter-bbu', args: () => [...treeArgs(), '-U', '--no-new-privileges=yes'], userns: true },
  {
    name: 'enter-deb',
    args: () => ['-D', DEBIAN, '--read-only', '--private-users=no'],
    userns: false,
    skip: existsSync(join(DEBIAN, 'usr/bin/dash')) ? undefined : `no Debian tree at ${DEBIAN}`,
  },
];

function treeArgs(): string[] {
  const tree = makeTree();
  mkdirSync(join(tree.dir, 'mnt'));
  cleanup.push(() => tree.remove());
  return ['-D', tree.dir];
}

describe.skipIf(skip)('entering a machine', () => {
  for (const c of cases) {
    describe.skipIf(c.skip)(`${c.name}${c.userns ? ' (-U)' : ''}`, () => {
      let watch: ReturnType<typeof makeWatchDir>;
      let n: Awaited<ReturnType<typeof startWatchedContainer>>;
      /** What the container's sd-nspawn said, for a failure's message. */
      const said = () => `\n--- sd-nspawn of ${c.name}:\n${n?.output() ?? ''}`;

      beforeAll(async () => {
        watch = makeWatchDir();
        cleanup.push(() => watch.remove());
        n = await startWatchedContainer(bus.env, client, c.name, watch, c.args());
        cleanup.push(() => stopNspawn(n));
      }, 90_000);

      it('root inside never sees a process more privileged than itself during OpenMachineShell', async () => {
        // OpenMachinePTY and BindMountMachine (their helpers) while it watches too.
        const [ptyFd, ptyPath] = (await manager(client, 'OpenMachinePTY', 's', [c.name])) as [number, string];
        closeQuietly(ptyFd);
        expect(ptyPath).toMatch(/^\/dev\/pts\/\d+$/);
        await manager(client, 'BindMountMachine', 'sssbb', [c.name, watch.dir, '/mnt/bound', true, true]);
        const out = await runShell(client, c.name, 'ls /mnt/bound; echo started; sleep 2; echo finished');
        expect(out, said()).toContain('watch.sh');
        expect(out, said()).toContain('finished');
        // The watcher looks at every process under each name it runs as.
        await new Promise((r) => setTimeout(r, 300));
        const log = watch.log();
        const seen = log.split('\n').filter((l) => l.startsWith('seen '));
        const priv = log.split('\n').filter((l) => l.startsWith('PRIV '));
        console.log(`${c.name}: the watcher saw\n${log}`);
        // It did watch: it saw the shell's sleep.
        expect(
          seen.some((l) => / comm=sleep /.test(l)),
          log,
        ).toBe(true);
        expect(priv, log).toEqual([]);
      });

      it("the shell has the leader's bounding set, seccomp filter, no_new_privs, cgroup and user namespace", async () => {
        const out = await runShell(
          client,
          c.name,
          'echo "me $$"; grep -H -E "^(CapBnd|CapEff|CapInh|CapAmb|Seccomp|NoNewPrivs):" /proc/$$/status /proc/1/status; ' +
            'echo "userns $(readlink /proc/$$/ns/user) $(readlink /proc/1/ns/user)"; ' +
            'echo "cgroup $(cat /proc/$$/cgroup | tr "\\n" " ")|$(cat /proc/1/cgroup | tr "\\n" " ")"',
        );
        const me = /me (\d+)/.exec(out)?.[1];
        const shell = statusOf(out, `/proc/${me}/status`);
        const pid1 = statusOf(out, '/proc/1/status');
        expect(pid1.CapBnd, out).toMatch(/^[0-9a-f]{16}$/);
        expect(shell.CapBnd, out).toBe(pid1.CapBnd);
        expect(shell.Seccomp, out).toBe('2');
        expect(pid1.Seccomp, out).toBe('2');
        expect(shell.NoNewPrivs, out).toBe(c.userns ? '1' : '0');
        expect(shell.NoNewPrivs, out).toBe(pid1.NoNewPrivs);
        expect(shell.CapInh, out).toBe('0000000000000000');
        expect(shell.CapAmb, out).toBe('0000000000000000');
        // root inside: every capability the bounding set allows, no more.
        expect(shell.CapEff, out).toBe(pid1.CapBnd);
        const userns = /userns (\S+) (\S+)/.exec(out);
        expect(userns?.[1], out).toBe(userns?.[2]);
        expect(userns?.[1] === readlinkSync('/proc/self/ns/user'), out).toBe(!c.userns);
        const cg = /cgroup (.*)\|(.*)/.exec(out.split(/\r?\n/).find((l) => l.startsWith('cgroup ')) ?? '');
        expect(cg?.[1]?.trim(), out).toBe(cg?.[2]?.trim());
        expect(cg?.[1]?.trim(), out).not.toBe('');
      });
    });
  }
});
