import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { O } from '../src/constants.js';
import { closeQuietly, open, read } from '../src/fd/fd.js';
import {
  credentialsCmsg,
  pktinfoCmsg,
  receivedCredentials,
  receivedFds,
  receivedPktinfo,
  rightsCmsg,
} from '../src/net/cmsg.js';
import { NETLINK, NetlinkSocket } from '../src/net/netlink.js';
import { encodeIfinfomsg, IFF, listLinks, parseLink, RTM } from '../src/net/rtnetlink.js';
import {
  AF,
  IP,
  IPPROTO,
  PACKET,
  parseSockaddr,
  SO,
  SOCK,
  SOL,
  sockaddrIn,
  sockaddrLl,
} from '../src/net/sockaddr.js';
import {
  bind,
  getsockname,
  recvfrom,
  recvmsg,
  sendmsg,
  sendto,
  setsockopt,
  socket,
  socketpair,
} from '../src/net/socket.js';
import { poller } from '../src/poller/poller.js';

const loIndex = Number(readFileSync('/sys/class/net/lo/ifindex', 'utf8'));

describe('netlink', () => {
  it('dumps the links and finds lo with its ifindex', async () => {
    const nl = new NetlinkSocket(NETLINK.ROUTE);
    try {
      expect(nl.portId).toBeGreaterThan(0);
      const msgs = await nl.dump(RTM.GETLINK, encodeIfinfomsg());
      const lo = msgs.map(parseLink).find((l) => l.name === 'lo');
      expect(lo?.index).toBe(loIndex);
      expect((lo?.flags ?? 0) & IFF.LOOPBACK).toBeTruthy();
      expect(lo?.type).toBe(772);
      // A second request on the same socket works too, and the helper agrees.
      expect((await listLinks(nl)).find((l) => l.index === loIndex)?.name).toBe('lo');
    } finally {
      nl.close();
    }
    expect(poller().size).toBe(0);
  });

  it('keeps every reply whole though all are read into one buffer', async () => {
    const nl = new NetlinkSocket(NETLINK.ROUTE);
    try {
      const [one] = await nl.request(RTM.GETLINK, 0, encodeIfinfomsg({ index: loIndex }));
      const before = Buffer.from(one?.payload ?? Buffer.alloc(0));
      // Later datagrams land where lo's reply was read: what we were given must not change.
      for (let i = 0; i < 3; i++) await nl.dump(RTM.GETLINK, encodeIfinfomsg());
      await nl.request(RTM.GETLINK, 0, encodeIfinfomsg({ index: loIndex })).catch(() => []);
      expect(one?.payload.equals(before)).toBe(true);
      expect(one && parseLink(one).name).toBe('lo');
    } finally {
      nl.close();
    }
  });

  it('gets one link, and a missing one is ENODEV', async () => {
    const nl = new NetlinkSocket(NETLINK.ROUTE);
    try {
      const [one] = await nl.request(RTM.GETLINK, 0, encodeIfinfomsg({ index: loIndex }));
      expect(one && parseLink(one).name).toBe('lo');
      await expect(nl.request(RTM.GETLINK, 0, encodeIfinfomsg({ index: 0x7ffffff0 }))).rejects.toMatchObject({
        code: 'ENODEV',
        errno: 19,
      });
    } finally {
      nl.close();
    }
  });
});

describe('unix sockets and control messages', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sd-net-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('passes an fd with SCM_RIGHTS and credentials with SCM_CREDENTIALS', async () => {
    const file = join(dir, 'passed');
    writeFileSync(file, 'through the socket');
    const [a, b] = socketpair(AF.UNIX, SOCK.DGRAM);
    const fd = open(file, O.RDONLY);
    let got: number[] = [];
    try {
      setsockopt(b, SOL.SOCKET, SO.PASSCRED, 1);
      expect(recvmsg(b)).toBeNull(); // nothing yet: non-blocking
      const sent = sendmsg(a, {
        data: [Buffer.from('fd '), Buffer.from('here')],
        control: [rightsCmsg([fd]), credentialsCmsg({ pid: process.pid, uid: 0, gid: 0 })],
      });
      expect(sent).toBe(7);
      await poller().readable(b);
      const msg = recvmsg(b);
      expect(msg?.data.toString()).toBe('fd here');
      got = receivedFds(msg?.control ?? []);
      expect(got).toHaveLength(1);
      expect(got[0]).not.toBe(fd);
      const buf = Buffer.alloc(64);
      expect(buf.subarray(0, read(got[0]!, buf)).toString()).toBe('through the socket');
      expect(receivedCredentials(msg?.control ?? [])).toEqual({ pid: process.pid, uid: 0, gid: 0 });
      // MSG_CMSG_CLOEXEC: the received fd does not leak into children.
      expect(readFileSync(`/proc/self/fdinfo/${got[0]}`, 'utf8')).toMatch(/^flags:\s*0*2[0-7]{6}$/m);
    } finally {
      closeQuietly(a, b, fd, ...got);
    }
  });
});

describe('inet datagrams on loopback', () => {
  it('receives into a buffer it is given, and refuses one too small', async () => {
    const rx = socket(AF.INET, SOCK.DGRAM | SOCK.NONBLOCK, IPPROTO.UDP);
    const tx = socket(AF.INET, SOCK.DGRAM, IPPROTO.UDP);
    try {
      bind(rx, sockaddrIn('127.0.0.1', 0));
      const to = getsockname(rx);
      const into = Buffer.alloc(64);
      expect(() => recvfrom(rx, 128, 0, into)).toThrow(/a buffer of 64 bytes for 128/);
      sendmsg(tx, { to, data: Buffer.from('first') });
      await poller().readable(rx);
      const r = recvfrom(rx, 64, 0, into);
      expect(r?.data.toString()).toBe('first');
      expect(r?.data.buffer).toBe(into.buffer);
      expect(recvfrom(rx, 64, 0, into)).toBeNull();
    } finally {
      closeQuietly(rx, tx);
    }
  });

  it('reports IP_PKTINFO of a UDP datagram sent to 127.0.0.1', async () => {
    const rx = socket(AF.INET, SOCK.DGRAM, IPPROTO.UDP);
    const tx = socket(AF.INET, SOCK.DGRAM, IPPROTO.UDP);
    try {
      setsockopt(rx, SOL.IP, IP.PKTINFO, 1);
      bind(rx, sockaddrIn('127.0.0.1', 0));
      const at = parseSockaddr(getsockname(rx));
      if (at?.family !== 'inet') throw new Error('not bound to inet');
      expect(
        sendmsg(tx, {
          to: sockaddrIn('127.0.0.1', at.port),
          data: Buffer.from('hi'),
          control: [pktinfoCmsg({})],
        }),
      ).toBe(2);
      await poller().readable(rx);
      const msg = recvmsg(rx);
      expect(msg?.data.toString()).toBe('hi');
      expect(receivedPktinfo(msg?.control ?? [])).toEqual({
        ifindex: loIndex,
        specDst: '127.0.0.1',
        addr: '127.0.0.1',
      });
      expect(parseSockaddr(msg?.from ?? Buffer.alloc(0))).toMatchObject({
        family: 'inet',
        address: '127.0.0.1',
      });
    } finally {
      closeQuietly(rx, tx);
    }
  });
});

describe('packet sockets', () => {
  it('receives an ethernet frame it sent to itself on lo, read through the poller', async () => {
    const ETHERTYPE = 0x88b5; // IEEE 802 local experimental: nobody else listens for it
    const fd = socket(AF.PACKET, SOCK.RAW, ((ETHERTYPE & 0xff) << 8) | (ETHERTYPE >> 8));
    try {
      bind(fd, sockaddrLl({ protocol: ETHERTYPE, ifindex: loIndex }));
      const payload = Buffer.from(`sd packet test ${process.pid}`);
      const frame = Buffer.concat([
        Buffer.alloc(6), // destination
        Buffer.alloc(6), // source
        Buffer.from([ETHERTYPE >> 8, ETHERTYPE & 0xff]),
        payload,
      ]);
      const to = sockaddrLl({ protocol: ETHERTYPE, ifindex: loIndex, addr: Buffer.alloc(6) });
      expect(sendto(fd, frame, to)).toBe(frame.length);
      const seen: Array<{ pkttype: number; data: Buffer }> = [];
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          poller().remove(fd);
          reject(new Error('no frame came back on lo'));
        }, 5000);
        poller().add(fd, () => {
          for (let r = recvfrom(fd); r; r = recvfrom(fd)) {
            const from = parseSockaddr(r.from);
            if (from?.family !== 'packet' || from.ifindex !== loIndex) continue;
            seen.push({ pkttype: from.pkttype, data: r.data });
            if (from.pkttype !== PACKET.OUTGOING) {
              clearTimeout(timer);
              poller().remove(fd);
              resolve();
              return;
            }
          }
        });
      });
      const incoming = seen.find((s) => s.pkttype !== PACKET.OUTGOING);
      expect(incoming?.data.equals(frame)).toBe(true);
    } finally {
      closeQuietly(fd);
    }
  });
});
