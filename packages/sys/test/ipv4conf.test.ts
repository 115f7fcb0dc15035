import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import {
  AF,
  addIPv4Address,
  addIPv4Route,
  attachSocketFilter,
  BPF,
  bindToDevice,
  bpfStmt,
  CLONE,
  closeQuietly,
  ifNameToIndex,
  listIPv4Addresses,
  NETLINK,
  NetlinkSocket,
  parseIPv4Address,
  RTM,
  removeIPv4Address,
  removeIPv4Route,
  SOCK,
  SpawnProgram,
  socket,
  spawn,
  withNetworkNamespace,
} from '../src/index.js';

const isRoot = process.getuid?.() === 0;
const inNs = (pid: number, ...args: string[]) =>
  execFileSync('nsenter', ['-t', String(pid), '-n', 'ip', ...args], { encoding: 'utf8' });

describe.skipIf(!isRoot)('IPv4 addresses and routes over rtnetlink, in a namespace of the test', () => {
  it('adds, lists and removes an address with lifetimes and a default route; a monitor sees it', async () => {
    const p = new SpawnProgram();
    p.resetSignals().execve('/bin/sleep', ['sleep', '60'], []);
    const holder = await spawn(p, { cloneFlags: CLONE.NEWNET });
    let nl: NetlinkSocket | undefined;
    let monitor: NetlinkSocket | undefined;
    try {
      inNs(holder.pid, 'link', 'add', 'sddhcpsys0', 'type', 'veth', 'peer', 'name', 'sddhcpsys1');
      inNs(holder.pid, 'link', 'set', 'sddhcpsys0', 'up');
      inNs(holder.pid, 'link', 'set', 'sddhcpsys1', 'up');
      const made = withNetworkNamespace(holder.pidfd, () => ({
        ifindex: ifNameToIndex('sddhcpsys0'),
        nl: new NetlinkSocket(NETLINK.ROUTE),
        monitor: new NetlinkSocket(NETLINK.ROUTE, { groups: 0x10 /* RTMGRP_IPV4_IFADDR */ }),
      }));
      ({ nl, monitor } = made);
      const seen: string[] = [];
      monitor.onNotification((m) => {
        const a = m.type === RTM.NEWADDR ? parseIPv4Address(m) : undefined;
        if (a) seen.push(a.address);
      });
      const { ifindex } = made;
      await addIPv4Address({ ifindex, address: '10.91.0.5', prefixLength: 24, validLifetime: 300 }, nl);
      await addIPv4Address({ ifindex, address: '169.254.7.7', prefixLength: 16, scope: 'link' }, nl);
      const listed = (await listIPv4Addresses(ifindex, nl)).sort((a, b) =>
        a.address.localeCompare(b.address),
      );
      expect(listed).toEqual([
        expect.objectContaining({ address: '10.91.0.5', prefixLength: 24, global: true }),
        expect.objectContaining({ address: '169.254.7.7', prefixLength: 16, global: false }),
      ]);
      expect(inNs(holder.pid, '-4', 'addr', 'show', 'dev', 'sddhcpsys0')).toMatch(
        /inet 10\.91\.0\.5\/24 brd 10\.91\.0\.255 scope global[\s\S]*valid_lft (300|29\d)sec/,
      );
      await addIPv4Route({ ifindex, gateway: '10.91.0.1', protocol: 'dhcp', metric: 1024 }, nl);
      expect(inNs(holder.pid, 'route', 'show', 'default')).toBe(
        'default via 10.91.0.1 dev sddhcpsys0 proto dhcp metric 1024 \n',
      );
      await removeIPv4Route({ ifindex, gateway: '10.91.0.1', protocol: 'dhcp', metric: 1024 }, nl);
      await removeIPv4Route({ ifindex, gateway: '10.91.0.1', protocol: 'dhcp', metric: 1024 }, nl);
      await expect(
        removeIPv4Route({ ifindex, gateway: '10.91.0.1', protocol: 'dhcp', metric: 1024 }, nl, false),
      ).rejects.toMatchObject({ code: 'ESRCH' });
      await removeIPv4Address({ ifindex, address: '10.91.0.5', prefixLength: 24 }, nl);
      await removeIPv4Address({ ifindex, address: '10.91.0.5', prefixLength: 24 }, nl);
      expect((await listIPv4Addresses(ifindex, nl)).map((a) => a.address)).toEqual(['169.254.7.7']);
      // Notifications caused by another socket's requests carry its port id and sequence.
      await new Promise((r) => setTimeout(r, 50));
      expect(seen).toEqual(['10.91.0.5', '169.254.7.7']);
      await expect(addIPv4Address({ ifindex, address: '10.91.0.5', prefixLength: 33 }, nl)).rejects.toThrow(
        /prefix length 33/,
      );
    } finally {
      nl?.close();
      monitor?.close();
      holder.kill(9);
      await holder.exited;
    }
  });

  it('binds a socket to a device, attaches a socket filter, and names a missing link', () => {
    const fd = socket(AF.INET, SOCK.DGRAM, 0);
    try {
      bindToDevice(fd, 'lo');
      attachSocketFilter(fd, [bpfStmt(BPF.RET | BPF.K, 0)]);
      expect(() => bindToDevice(fd, 'x'.repeat(16))).toThrow(/bad interface name/);
    } finally {
      closeQuietly(fd);
    }
    expect(ifNameToIndex('lo')).toBe(1);
    expect(() => ifNameToIndex('sddhcp-none')).toThrow(/if_nametoindex 'sddhcp-none': ENODEV/);
  });
});
