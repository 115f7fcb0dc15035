import { type ChildProcess, execFileSync, spawn as spawnProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CLONE,
  closeQuietly,
  encodeIfinfomsg,
  IFF,
  ifNameToIndex,
  listIPv4Addresses,
  NETLINK,
  NetlinkSocket,
  openNamespace,
  parseIPv4Address,
  RTM,
  removeIPv4Address,
  SpawnProgram,
  spawn,
  withNetworkNamespace,
} from '@sd/sys';

/**
 * The bench's little network: two namespaces (held by sleeping processes)
 * joined by a veth pair, "server" end A and "client" end B; helpers to flip
 * B's link, flush it, watch for its first IPv4 address, and run
 * systemd-networkd by hand in a namespace (its own mount namespace with a
 * read-only sysfs of that network namespace and a tmpfs on /run/systemd).
 */

const RTMGRP_IPV4_IFADDR = 0x10;

export interface Ns {
  pid: number;
  fd: number;
  stop(): Promise<void>;
}

export async function makeNs(): Promise<Ns> {
  const p = new SpawnProgram();
  p.resetSignals().execve('/bin/sleep', ['sleep', '3600'], []);
  const child = await spawn(p, { cloneFlags: CLONE.NEWNET });
  const fd = openNamespace(child.pid, 'net');
  return {
    pid: child.pid,
    fd,
    stop: async () => {
      closeQuietly(fd);
      child.kill(9);
      await child.exited;
    },
  };
}

export function nsExec(ns: Ns, cmd: string[]): string {
  return execFileSync('nsenter', ['-t', String(ns.pid), '-n', ...cmd], { encoding: 'utf8' });
}

export class LinkHandle {
  readonly ifindex: number;
  private readonly nl: NetlinkSocket;
  private readonly monitor: NetlinkSocket;
  private waiter: ((address: string) => void) | undefined;

  constructor(
    readonly ns: Ns,
    readonly ifname: string,
  ) {
    const made = withNetworkNamespace(ns.fd, () => ({
      ifindex: ifNameToIndex(ifname),
      nl: new NetlinkSocket(NETLINK.ROUTE),
      monitor: new NetlinkSocket(NETLINK.ROUTE, { groups: RTMGRP_IPV4_IFADDR }),
    }));
    this.ifindex = made.ifindex;
    this.nl = made.nl;
    this.monitor = made.monitor;
    this.monitor.onNotification((m) => {
      if (m.type !== RTM.NEWADDR) return;
      const a = parseIPv4Address(m);
      if (a && a.ifindex === this.ifindex && !a.address.startsWith('169.254.') && this.waiter) {
        const w = this.waiter;
        this.waiter = undefined;
        w(a.address);
      }
    });
  }

  async setUp(up: boolean): Promise<void> {
    await this.nl.request(
      RTM.SETLINK,
      0,
      encodeIfinfomsg({ index: this.ifindex, flags: up ? IFF.UP : 0, change: IFF.UP }),
    );
  }

  async flush(): Promise<void> {
    for (const a of await listIPv4Addresses(this.ifindex, this.nl))
      await removeIPv4Address(
        { ifindex: this.ifindex, address: a.address, prefixLength: a.prefixLength },
        this.nl,
      );
  }

  /** Resolves with the first non-link-local IPv4 address that appears on the link from now on. */
  nextAddress(timeoutMs = 10_000): Promise<string> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiter = undefined;
        reject(new Error(`${this.ifname}: no address within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiter = (a) => {
        clearTimeout(t);
        resolve(a);
      };
    });
  }

  close(): void {
    this.nl.close();
    this.monitor.close();
  }
}

/** systemd-networkd, by hand, in `ns`, with `.network` files given by name → content. */
export interface Networkd {
  child: ChildProcess;
  log(): string;
}

export async function startNetworkd(
  ns: Ns,
  dir: string,
  networks: Record<string, string>,
): Promise<Networkd> {
  mkdirSync(dir, { recursive: true });
  const conf = join(dir, 'network');
  mkdirSync(conf, { recursive: true });
  for (const [name, text] of Object.entries(networks)) writeFileSync(join(conf, name), text);
  const script = join(dir, 'networkd.sh');
  writeFileSync(
    script,
    [
      '#!/bin/sh',
      'set -e',
      'mount --make-rprivate /',
      'mount -t sysfs -o ro sysfs /sys',
      'mount -t tmpfs tmpfs /run/systemd',
      'mkdir -p /run/systemd/network /run/systemd/netif',
      'chown systemd-network:systemd-network /run/systemd/netif',
      `cp ${conf}/* /run/systemd/network/`,
      'exec /usr/lib/systemd/systemd-networkd',
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  const child = spawnProcess('nsenter', ['-t', String(ns.pid), '-n', 'unshare', '-m', script], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, SYSTEMD_LOG_LEVEL: 'info' },
  });
  let log = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    log += d;
  });
  // Ready once it has read its configuration and enumerated the links.
  const start = Date.now();
  while (!/Enumeration completed/.test(log)) {
    if (child.exitCode !== null) throw new Error(`systemd-networkd exited: ${log}`);
    if (Date.now() - start > 10_000) throw new Error(`systemd-networkd did not start: ${log}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return { child, log: () => log };
}
