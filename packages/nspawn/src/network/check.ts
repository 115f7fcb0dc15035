import { fstatSync, statSync } from 'node:fs';
import {
  closeQuietly,
  createLink,
  createNetworkNamespace,
  ERRNO,
  ifNameToIndex,
  O,
  open,
  openRouteSocket,
  SyscallError,
} from '@sd/sys';
import { NspawnError } from '../errors.js';
import { hasPrivateNetwork } from '../settings/network.js';
import type { Settings } from '../settings/settings.js';

/**
 * Refuses network settings this build cannot honour, before anything is
 * made: a container must never end up on the host's network because an
 * option was quietly dropped.
 */
export async function checkNetworkSettings(s: Settings): Promise<void> {
  if (s.networkNamespacePath !== undefined && hasPrivateNetwork(s))
    throw new NspawnError(
      'EINVAL',
      '--network-namespace-path= cannot be combined with other network options (--private-network, --network-*)',
    );
  if (s.networkBridge !== undefined && s.networkZone !== undefined)
    throw new NspawnError('EINVAL', '--network-bridge= and --network-zone= are mutually exclusive');
  if (s.ports.length && !(s.networkVeth || s.networkZone !== undefined))
    throw new NspawnError(
      'EINVAL',
      '--port= needs a virtual Ethernet link with an address from the pool (--network-veth or --network-zone=)',
    );
  const seen = new Set<string>();
  for (const p of s.ports) {
    const key = `${p.protocol}:${p.hostPort}`;
    if (seen.has(key)) throw new NspawnError('EINVAL', `--port=: ${key} is given twice`);
    seen.add(key);
  }
  if (s.networkIpvlan.length) await refuseIpvlan(s.networkIpvlan[0]!);
  // Checked again when they are moved; here so that a typo changes nothing in the tree.
  for (const [option, names] of [
    ['network-interface', s.networkInterfaces],
    ['network-macvlan', s.networkMacvlan],
  ] as const)
    for (const name of names)
      try {
        ifNameToIndex(name);
      } catch {
        throw new NspawnError('ENODEV', `--${option}=${name}: no such interface on the host`);
      }
}

/**
 * --network-ipvlan: probes the kernel for the ipvlan link type (in a
 * throwaway network namespace, where the request cannot touch anything):
 * EOPNOTSUPP means the type does not exist.
 */
async function refuseIpvlan(parent: string): Promise<never> {
  const ns = createNetworkNamespace();
  const sock = openRouteSocket(ns);
  let missing = false;
  try {
    // On lo, which can never be an ipvlan parent: only whether the kind exists is learnt.
    await createLink(sock, { name: 'sdprobe0', kind: 'ipvlan', parent: 1 });
  } catch (e) {
    missing = e instanceof SyscallError && e.errno === ERRNO.EOPNOTSUPP; // "Unknown device type"
  } finally {
    sock.close();
    closeQuietly(ns);
  }
  throw new NspawnError(
    'EOPNOTSUPP',
    missing
      ? `--network-ipvlan=${parent}: this kernel has no IPVLAN support (CONFIG_IPVLAN is not built in and the ipvlan module is not available)`
      : `--network-ipvlan=${parent}: ipvlan links are not supported by sd-nspawn yet`,
  );
}

/** An fd of the network namespace file given by --network-namespace-path=, checked to be one. */
export function openNetnsPath(path: string): number {
  let fd: number;
  try {
    fd = open(path, O.RDONLY | O.CLOEXEC);
  } catch (e) {
    throw new NspawnError('ENOENT', `--network-namespace-path=${path}: cannot open it`, { cause: e });
  }
  try {
    const st = fstatSync(fd);
    const ns = statSync('/proc/self/ns/net');
    // Every namespace file lives on nsfs: the same device as our own.
    if (st.dev !== ns.dev)
      throw new NspawnError('EINVAL', `--network-namespace-path=${path} is not a network namespace`);
  } catch (e) {
    closeQuietly(fd);
    throw e;
  }
  return fd;
}
