import type { NatTable } from '@sd/networkd-veth';
import { createLink, deleteLink, getLink, type LinkInfo, listLinks, type NetlinkSocket } from '@sd/sys';

/** The alias of bridges sd-nspawn made for --network-zone: only those are removed again. */
export const ZONE_ALIAS = 'sd-nspawn network zone';

/** Whether a link is a zone bridge sd-nspawn made. */
export function isZoneBridge(l: LinkInfo): boolean {
  return l.kind === 'bridge' && l.name.startsWith('vz-') && l.alias === ZONE_ALIAS;
}

export function zoneBridgeName(zone: string): string {
  return `vz-${zone}`;
}

/** vz-ZONE, made (up, marked as ours) when it does not exist yet. */
export async function ensureZoneBridge(sock: NetlinkSocket, zone: string): Promise<LinkInfo> {
  const name = zoneBridgeName(zone);
  const found = await getLink(sock, name);
  if (found) {
    if (found.kind !== 'bridge') throw new Error(`${name} exists and is not a bridge`);
    return found;
  }
  try {
    await createLink(sock, { name, kind: 'bridge', alias: ZONE_ALIAS, up: true });
  } catch (e) {
    // Another container of the zone made it in between.
    if ((e as { code?: string }).code !== 'EEXIST') throw e;
  }
  const made = await getLink(sock, name);
  if (!made) throw new Error(`${name} vanished right after it was made`);
  return made;
}

/**
 * Removes zone bridges of ours that have no port left (and their
 * masquerade element): the last member of a zone takes the bridge with it,
 * and a bridge left by a killed sd-nspawn goes at the next start.
 */
export async function removeEmptyZoneBridges(
  sock: NetlinkSocket,
  nat?: NatTable,
  only?: string,
): Promise<void> {
  const links = await listLinks(sock);
  for (const l of links) {
    if (!isZoneBridge(l)) continue;
    if (only !== undefined && l.name !== only) continue;
    if (links.some((p) => p.master === l.index)) continue;
    await deleteLink(sock, l.index, { missingOk: true });
    nat?.remove((o) => 'link' in o && o.link === l.name);
  }
}
