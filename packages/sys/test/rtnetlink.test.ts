import { execFileSync, spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeQuietly } from '../src/fd/fd.js';
import { addAddress, deleteAddress, listAddresses } from '../src/net/address.js';
import {
  addAltName,
  createLink,
  deleteLink,
  getLink,
  moveLink,
  openRouteSocket,
  setLink,
} from '../src/net/link.js';
import { type LinkEvent, LinkMonitor } from '../src/net/monitor.js';
import type { NetlinkSocket } from '../src/net/netlink.js';
import { createNetworkNamespace } from '../src/net/netns.js';
import { addRoute, deleteRoute, listRoutes } from '../src/net/route.js';
import { IFF, listLinks } from '../src/net/rtnetlink.js';
import { AF } from '../src/net/sockaddr.js';
import { poller } from '../src/poller/poller.js';

// Everything happens in two network namespaces this test makes (A and B):
// the host's own links are never touched. `ip` only checks our work from outside.
let nsA = -1;
let nsB = -1;
const ipIn = (fd: number, ...args: string[]) =>
  execFileSync('nsenter', [`--net=/proc/${process.pid}/fd/${fd}`, 'ip', ...args], { encoding: 'utf8' });
const ip = (ns: 'A' | 'B', ...args: string[]) => ipIn(ns === 'A' ? nsA : nsB, ...args);
const A = 'A';
const B = 'B';
let a: NetlinkSocket;
let b: NetlinkSocket;

describe('rtnetlink links, addresses, routes (in test namespaces)', () => {
  beforeAll(() => {
    nsA = createNetworkNamespace();
    nsB = createNetworkNamespace();
    a = openRouteSocket(nsA);
    b = openRouteSocket(nsB);
  });
  afterAll(() => {
    a?.close();
    b?.close();
    closeQuietly(nsA, nsB);
  });

  it('creates a veth pair with the peer in another namespace, sets MAC, MTU, alias, up', async () => {
    const index = await createLink(a, {
      name: 'sdnet-v0',
      kind: 'veth',
      address: '02:11:22:33:44:55',
      mtu: 1400,
      up: true,
      peer: { name: 'sdnet-p0', netns: { fd: nsB }, address: '02:11:22:33:44:66' },
    });
    expect(index).toBeGreaterThan(0);
    const l = await getLink(a, 'sdnet-v0');
    expect(l).toMatchObject({ index, kind: 'veth', mtu: 1400, address: '02:11:22:33:44:55' });
    expect(ip(A, 'link', 'show', 'sdnet-v0')).toMatch(/mtu 1400/);
    expect(ip(B, 'link', 'show', 'sdnet-p0')).toMatch(/02:11:22:33:44:66/);
    await setLink(a, index, { alias: 'made by a test', mtu: 1300, up: false });
    expect(await getLink(a, index)).toMatchObject({ alias: 'made by a test', mtu: 1300 });
    expect((await getLink(a, index))!.flags & IFF.UP).toBe(0);
    await setLink(a, index, { name: 'sdnet-v1' });
    expect((await getLink(a, index))?.name).toBe('sdnet-v1');
    await addAltName(a, index, 'sdnet-a-rather-long-alternative-name');
    expect((await getLink(a, index))?.altNames).toContain('sdnet-a-rather-long-alternative-name');
    expect(await deleteLink(a, 'sdnet-v1')).toBe(true);
    // The peer went with it.
    expect(await getLink(b, 'sdnet-p0')).toBeUndefined();
    expect(await deleteLink(a, 'sdnet-v1', { missingOk: true })).toBe(false);
    await expect(deleteLink(a, 'sdnet-v1')).rejects.toMatchObject({ code: 'ENODEV' });
  });

  it('makes a bridge, enslaves a port, makes a macvlan, moves a link by pidfd-free fd and back', async () => {
    const br = await createLink(a, { name: 'sdnet-br0', kind: 'bridge', up: true });
    const v = await createLink(a, { name: 'sdnet-v2', kind: 'veth', peer: { name: 'sdnet-p2' } });
    await setLink(a, v, { master: br, up: true });
    expect((await getLink(a, v))?.master).toBe(br);
    expect(ip(A, 'link', 'show', 'master', 'sdnet-br0')).toMatch(/sdnet-v2/);
    await setLink(a, v, { master: 0 });
    expect((await getLink(a, v))?.master).toBeUndefined();

    const mv = await createLink(a, { name: 'sdnet-mv0', kind: 'macvlan', parent: v, mode: 'BRIDGE' });
    expect((await getLink(a, mv))?.kind).toBe('macvlan');
    expect(ip(A, '-d', 'link', 'show', 'sdnet-mv0')).toMatch(/macvlan mode bridge/);

    await moveLink(a, 'sdnet-mv0', { fd: nsB });
    expect(await getLink(a, 'sdnet-mv0')).toBeUndefined();
    const moved = await getLink(b, 'sdnet-mv0');
    expect(moved?.kind).toBe('macvlan');
    await moveLink(b, moved!.index, { fd: nsA }, 'sdnet-mv1');
    expect((await getLink(a, 'sdnet-mv1'))?.kind).toBe('macvlan');

    await deleteLink(a, 'sdnet-mv1');
    await deleteLink(a, v);
    await deleteLink(a, br);
    expect((await listLinks(a)).map((l) => l.name)).toEqual(['lo']);
  });

  it('adds, lists and removes addresses and routes; refuses bad input', async () => {
    const v = await createLink(a, {
      name: 'sdnet-v3',
      kind: 'veth',
      up: true,
      peer: { name: 'sdnet-p3', up: true },
    });
    await addAddress(a, { index: v, address: '10.77.0.1', prefixLength: 28 });
    await addAddress(a, { index: v, address: 'fd77::1', prefixLength: 64 });
    const addrs = await listAddresses(a, { index: v });
    expect(addrs.find((x) => x.family === AF.INET)).toMatchObject({
      address: '10.77.0.1',
      prefixLength: 28,
      broadcast: '10.77.0.15',
    });
    expect(addrs.some((x) => x.address === 'fd77::1' && x.prefixLength === 64)).toBe(true);
    expect(ip(A, '-4', 'addr', 'show', 'sdnet-v3')).toMatch(/inet 10\.77\.0\.1\/28 brd 10\.77\.0\.15/);
    await expect(addAddress(a, { index: v, address: '10.77.0.1', prefixLength: 28 })).rejects.toMatchObject({
      code: 'EEXIST',
    });

    await addRoute(a, { destination: '10.88.0.0', prefixLength: 16, gateway: '10.77.0.2' });
    await addRoute(a, { gateway: '10.77.0.3' });
    const routes = await listRoutes(a, { family: AF.INET });
    expect(routes).toContainEqual(
      expect.objectContaining({ destination: '10.88.0.0', prefixLength: 16, gateway: '10.77.0.2', oif: v }),
    );
    expect(routes).toContainEqual(
      expect.objectContaining({ destination: '0.0.0.0', prefixLength: 0, gateway: '10.77.0.3' }),
    );
    expect(ip(A, 'route')).toMatch(/default via 10\.77\.0\.3/);
    await deleteRoute(a, { destination: '10.88.0.0', prefixLength: 16 });
    await deleteRoute(a, { gateway: '10.77.0.3' });
    expect(await deleteRoute(a, { destination: '10.88.0.0', prefixLength: 16 }, { missingOk: true })).toBe(
      false,
    );
    expect(ip(A, 'route')).not.toMatch(/10\.88|default/);

    await deleteAddress(a, { index: v, address: '10.77.0.1', prefixLength: 28 });
    expect(
      await deleteAddress(a, { index: v, address: '10.77.0.1', prefixLength: 28 }, { missingOk: true }),
    ).toBe(false);
    expect((await listAddresses(a, { index: v, family: AF.INET })).length).toBe(0);

    await expect(addAddress(a, { index: v, address: '10.1.1.1', prefixLength: 33 })).rejects.toThrow(
      /prefix length: 33/,
    );
    await expect(addAddress(a, { index: v, address: '10.1.1', prefixLength: 24 })).rejects.toThrow(
      /'10.1.1'/,
    );
    await expect(createLink(a, { name: 'a-name-that-is-too-long', kind: 'bridge' })).rejects.toThrow(
      /Invalid interface name/,
    );
    await expect(setLink(a, v, { mtu: 10 })).rejects.toThrow(/Invalid MTU: 10/);
    await expect(setLink(a, v, { address: 'zz' })).rejects.toThrow(/not a MAC address: 'zz'/);
    await expect(createLink(a, { name: 'sdnet-v3', kind: 'bridge' })).rejects.toThrow(
      /create bridge sdnet-v3: EEXIST/,
    );
    await deleteLink(a, v);
  });

  it('reports link and address changes through the poller', async () => {
    const events: LinkEvent[] = [];
    const mon = new LinkMonitor((e) => events.push(e), { netns: nsA });
    try {
      const v = await createLink(a, { name: 'sdnet-v4', kind: 'veth', peer: { name: 'sdnet-p4' } });
      await setLink(a, v, { up: true });
      await addAddress(a, { index: v, address: '10.66.0.1', prefixLength: 24 });
      await deleteLink(a, v);
      const deadline = Date.now() + 2000;
      while (
        Date.now() < deadline &&
        !events.some((e) => e.type === 'link-del' && e.link.name === 'sdnet-v4')
      )
        await new Promise((r) => setTimeout(r, 10));
      expect(
        events.some((e) => e.type === 'link-new' && e.link.name === 'sdnet-v4' && e.link.kind === 'veth'),
      ).toBe(true);
      expect(events.some((e) => e.type === 'addr-new' && e.address.address === '10.66.0.1')).toBe(true);
      expect(events.some((e) => e.type === 'link-del' && e.link.index === v)).toBe(true);
    } finally {
      mon.close();
    }
    // The host's namespace saw none of it.
    expect(execFileSync('ip', ['link'], { encoding: 'utf8' })).not.toMatch(/sdnet-v4/);
  });

  it('retries a dump that links coming and going interrupted (NLM_F_DUMP_INTR)', async () => {
    // Enough links that a dump takes several parts, so a change can land between them,
    // as when many containers start at once.
    const names = Array.from({ length: 40 }, (_, i) => `sdnet-d${i}`);
    execFileSync('nsenter', [`--net=/proc/${process.pid}/fd/${nsA}`, 'ip', '-batch', '-'], {
      input: names.map((n) => `link add ${n} type veth peer name ${n.replace('-d', '-e')}\n`).join(''),
    });
    const churn = spawn('nsenter', [
      `--net=/proc/${process.pid}/fd/${nsA}`,
      'sh',
      '-c',
      'i=0; while [ $i -lt 300 ]; do ip link add sdnet-c type veth peer name sdnet-cp; ip link del sdnet-c; i=$((i+1)); done',
    ]);
    const done = new Promise((r) => churn.once('exit', r));
    let running = true;
    void done.then(() => {
      running = false;
    });
    let dumps = 0;
    try {
      while (running) {
        const links = await listLinks(a);
        expect(links.filter((l) => l.name.startsWith('sdnet-d'))).toHaveLength(40);
        dumps++;
      }
    } finally {
      churn.kill();
      await done;
      execFileSync('nsenter', [`--net=/proc/${process.pid}/fd/${nsA}`, 'ip', '-batch', '-'], {
        input: names.map((n) => `link del ${n}\n`).join(''),
      });
    }
    expect(dumps).toBeGreaterThan(10);
  });

  it('leaves no fd in the poller', () => {
    a.close();
    b.close();
    expect(poller().size).toBe(0);
  });
});
