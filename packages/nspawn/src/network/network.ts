import { fstatSync, mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import {
  type ConfiguredLink,
  type ContainerAddress,
  type ContainerAddressing,
  configureContainerLink,
  DEFAULT_NAT_LOCK,
  dhcpAddressing,
  generateMac,
  LOCKS,
  markStep,
  NatTable,
  processGone,
  selfOwner,
  shortenIfname,
  sweepStaleClaims,
  vethHostName,
  withLockFile,
} from '@sd/networkd-veth';
import {
  addAltName,
  type ChildProcess,
  closeQuietly,
  createLink,
  deleteLink,
  getLink,
  listLinks,
  moveLink,
  type NetlinkSocket,
  O,
  open,
  openNamespace,
  openRouteSocket,
  setLink,
} from '@sd/sys';
import { NspawnError } from '../errors.js';
import type { Settings } from '../settings/settings.js';
import { serveContainerLink } from './dhcp.js';
import { ensureZoneBridge, isZoneBridge, removeEmptyZoneBridges, zoneBridgeName } from './zone.js';

/**
 * The container's links, made from the host while the payload waits:
 * veth pairs (ve-NAME / vb-NAME on the host, host0 inside), extra veths,
 * moved-in interfaces, macvlans; the host side of ve-/vz- configured as
 * systemd-networkd would, masquerade and --port forwards in our nftables
 * table. Undone in reverse order by cleanup().
 */

export interface ContainerNetwork {
  /** Host-side ifindices of the container's links (for machine registration). */
  hostInterfaces: number[];
  /** host0's address, when the supervisor gave it one. */
  address?: ContainerAddress;
  cleanup(): Promise<void>;
}

export interface NetworkOptions {
  runtimeDir: string;
  /**
   * How host0 gets its address: by default DHCP (network/dhcp.ts serves it,
   * unless sd-networkd-veth runs), from our client, or from the guest's own
   * with --boot (see dhcpAddressing for the rule).
   */
  addressing?: ContainerAddressing;
  /** How long host0's address is waited for before the payload runs (ms). */
  addressWaitMs?: number;
  logger?: { warn(message: string): void };
}

// The lock every writer of our nftables table shares (sd-networkd-veth too).
async function undoAll(undo: Array<() => unknown>): Promise<void> {
  while (undo.length) await undo.pop()!();
}

function natLock(_runtimeDir: string): string {
  mkdirSync(dirname(DEFAULT_NAT_LOCK), { recursive: true });
  return DEFAULT_NAT_LOCK;
}

/**
 * What a killed sd-nspawn left in this network namespace: its masquerade
 * and port-forward elements (their owner process is gone), elements of
 * links that no longer exist, and empty zone bridges of ours.
 */
export async function removeStaleNetworkState(sock: NetlinkSocket, nat: NatTable): Promise<void> {
  const links = await listLinks(sock);
  const names = new Set(links.map((l) => l.name));
  nat.remove((o) => processGone(o) || ('link' in o && !names.has(o.link)));
  sweepStaleClaims();
  // The zones' lock and a second listing only when there is a zone bridge of ours at all.
  if (links.some(isZoneBridge)) await withLockFile(LOCKS.zones, () => removeEmptyZoneBridges(sock, nat));
}

export async function setupContainerNetwork(
  settings: Settings,
  machine: string,
  target: ChildProcess | number,
  options: NetworkOptions,
): Promise<ContainerNetwork> {
  markStep('net: begin');
  const undo: Array<() => unknown> = [];
  const hostInterfaces: number[] = [];
  const ownNetns = openNamespace('self', 'net');
  undo.push(() => closeQuietly(ownNetns));
  // Held until cleanup: the namespace (and the links in it) outlive the payload until we are done with them.
  const netns =
    typeof target === 'number'
      ? open(`/proc/self/fd/${target}`, O.RDONLY | O.CLOEXEC)
      : openNamespace(target.pid, 'net');
  undo.push(() => closeQuietly(netns));
  // Links for a container that shares our namespace would configure the host itself.
  if (fstatSync(netns).ino === fstatSync(ownNetns).ino) {
    await undoAll(undo);
    throw new NspawnError(
      'EINVAL',
      'internal: the container has no network namespace of its own; refusing to set up its links',
    );
  }
  const host = openRouteSocket();
  undo.push(() => host.close());
  const inside = openRouteSocket(netns);
  undo.push(() => inside.close());
  const owner = selfOwner(machine);
  markStep('net: namespaces and netlink sockets');
  // Made first so that it is closed last: zone and veth cleanups use it.
  let nat: NatTable | undefined;
  if (settings.networkVeth || settings.networkZone !== undefined) {
    const n = new NatTable({ lockPath: natLock(options.runtimeDir) });
    nat = n;
    undo.push(() => n.close());
    markStep('net: libnftables context');
  }
  // What a killed sd-nspawn left goes first: its subnets are free again.
  if (nat) {
    await removeStaleNetworkState(host, nat);
    markStep('net: stale state swept');
  }
  const getNat = () => {
    if (!nat) throw new NspawnError('EINVAL', 'internal: no nftables table for this network setup');
    return nat;
  };
  const result: ContainerNetwork = {
    hostInterfaces,
    cleanup: async () => {
      while (undo.length) {
        try {
          await undo.pop()!();
        } catch (e) {
          options.logger?.warn(`Network cleanup: ${(e as Error).message}`);
        }
      }
    },
  };
  try {
    if (settings.networkVeth || settings.networkBridge !== undefined || settings.networkZone !== undefined)
      await setupVeth(settings, machine, {
        host,
        inside,
        netns,
        owner,
        getNat,
        undo,
        hostInterfaces,
        result,
        options,
      });
    let extra = 0;
    for (const spec of settings.networkVethExtra) {
      const [hostName, containerName = hostName] = spec.split(':') as [string, string?];
      extra++;
      const index = await createLink(host, {
        name: hostName,
        kind: 'veth',
        address: generateMac(machine, 'vethExtraHost', extra),
        peer: {
          name: containerName,
          netns: { fd: netns },
          address: generateMac(machine, 'vethExtraContainer', extra),
        },
      });
      undo.push(() => deleteLink(host, index, { missingOk: true }));
      hostInterfaces.push(index);
    }
    for (const name of settings.networkInterfaces) {
      const link = await getLink(host, name);
      if (!link)
        throw new NspawnError('ENODEV', `--network-interface=${name}: no such interface on the host`);
      await moveLink(host, link.index, { fd: netns });
      // Given back on exit, under its own name, before the namespace can go away.
      undo.push(async () => {
        const back = await getLink(inside, name);
        if (back) await moveLink(inside, back.index, { fd: ownNetns });
      });
    }
    let mv = 0;
    for (const parentName of settings.networkMacvlan) {
      const parent = await getLink(host, parentName);
      if (!parent)
        throw new NspawnError('ENODEV', `--network-macvlan=${parentName}: no such interface on the host`);
      mv++;
      const name = shortenIfname(`mv-${parentName}`).name;
      await createLink(host, {
        name,
        kind: 'macvlan',
        parent: parent.index,
        mode: 'BRIDGE',
        netns: { fd: netns },
        address: generateMac(machine, 'macvlan', mv),
      });
    }
    markStep('net: done');
    return result;
  } catch (e) {
    await result.cleanup();
    throw e;
  }
}

interface VethContext {
  host: NetlinkSocket;
  inside: NetlinkSocket;
  netns: number;
  owner: ReturnType<typeof selfOwner>;
  getNat: () => NatTable;
  undo: Array<() => unknown>;
  hostInterfaces: number[];
  result: ContainerNetwork;
  options: NetworkOptions;
}

/** A zone is made, joined and removed under one lock: a start never sees another's new, still empty bridge. */
function setupVeth(settings: Settings, machine: string, x: VethContext): Promise<void> {
  if (settings.networkZone === undefined) return setupVethLocked(settings, machine, x);
  return withLockFile(LOCKS.zones, () => setupVethLocked(settings, machine, x));
}

async function setupVethLocked(settings: Settings, machine: string, x: VethContext): Promise<void> {
  const bridged = settings.networkBridge !== undefined || settings.networkZone !== undefined;
  const names = vethHostName(machine, { bridge: bridged });
  let bridge: number | undefined;
  if (settings.networkBridge !== undefined) {
    const br = await getLink(x.host, settings.networkBridge);
    if (br?.kind !== 'bridge')
      throw new NspawnError(
        'ENODEV',
        `--network-bridge=${settings.networkBridge}: no such bridge on the host`,
      );
    bridge = br.index;
  }
  let zoneLink: Awaited<ReturnType<typeof configureContainerLink>> | undefined;
  if (settings.networkZone !== undefined) {
    const zone = settings.networkZone;
    const br = await ensureZoneBridge(x.host, zone);
    bridge = br.index;
    // The zone goes with its last member (and at once if configuring it fails).
    x.undo.push(() =>
      withLockFile(LOCKS.zones, () => removeEmptyZoneBridges(x.host, x.getNat(), zoneBridgeName(zone))),
    );
    zoneLink = await configureContainerLink(x.host, br, { nat: x.getNat(), seed: `zone:${zone}` });
  }
  const index = await createLink(x.host, {
    name: names.name,
    kind: 'veth',
    address: generateMac(machine, 'host'),
    // ve- comes up with its making (one request less); a bridge port only once it is in its bridge.
    ...(bridged ? {} : { up: true }),
    peer: { name: 'host0', netns: { fd: x.netns }, address: generateMac(machine, 'container') },
  });
  x.undo.push(() => deleteLink(x.host, index, { missingOk: true }));
  x.hostInterfaces.push(index);
  markStep('net: veth created, host0 moved in');
  if (names.altName) {
    try {
      await addAltName(x.host, index, names.altName);
    } catch {
      // Alternative names are a convenience; an older kernel lacks them.
    }
  }
  const inner = await getLink(x.inside, 'host0');
  if (!inner) throw new NspawnError('ENODEV', 'host0 did not appear in the container');
  markStep('net: host0 looked up');
  let served: ConfiguredLink | undefined;
  if (bridge !== undefined) {
    await setLink(x.host, index, { master: bridge, up: true });
    served = zoneLink;
  } else {
    served = await configureContainerLink(x.host, index, {
      nat: x.getNat(),
      owner: x.owner,
      seed: machine,
    });
    x.undo.push(() => x.getNat().removeOwner(x.owner));
    markStep('net: host side configured');
  }
  // --network-bridge: the bridge's owner addresses it, not us (as systemd-nspawn).
  if (!served) return;
  const dhcp = serveContainerLink(served, x.options.logger);
  if (dhcp) x.undo.push(() => dhcp.release());
  markStep('net: DHCP server serving');
  const addressing =
    x.options.addressing ??
    dhcpAddressing({
      guest: settings.boot,
      ...(x.options.addressWaitMs !== undefined ? { waitMs: x.options.addressWaitMs } : {}),
      ...(x.options.logger ? { logger: x.options.logger } : {}),
    });
  const handle = await addressing.configure({
    sock: x.inside,
    netns: x.netns,
    index: inner.index,
    host: served,
    peer: { sock: x.host, index },
    machine,
  });
  x.undo.push(() => handle.stop());
  x.result.address = handle.address;
  markStep('net: host0 addressed');
  if (settings.ports.length) {
    const nat = x.getNat();
    let forwarded = false;
    // Registered before adding: a failure half-way still removes what was added (and no late address adds more).
    x.undo.push(() => {
      forwarded = true;
      nat.removeOwner(x.owner);
    });
    const forward = (address: string) => {
      if (forwarded) return;
      forwarded = true;
      for (const p of settings.ports) nat.addPortForward(p, address, x.owner);
    };
    // Without an address yet (a booted guest's client, a slow server) the forwards follow the first one.
    if (handle.address) forward(handle.address.address);
    else
      handle.onAddress((a) => {
        x.result.address ??= a;
        try {
          forward(a.address);
        } catch (e) {
          x.options.logger?.warn(`--port: ${(e as Error).message}`);
        }
      });
  }
}
