import { createHash } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { AT, lgetxattr, llistxattr, lsetxattr, utimensat } from '@sd/sys';

/** Test trees: one with every kind of metadata an image carries, and a comparison of two trees. */

/** security.capability v2 for cap_net_raw+ep: binary, with bytes ≥ 0x80 and NULs. */
export const CAP_NET_RAW = Buffer.from('0000000201200000000000000000000000000000', 'hex');
export const BINARY = Buffer.from([0x00, 0xff, 0x80, 0xc3, 0x28, 0x0a, 0x3d, 0x20]);

export function makeTree(root: string): void {
  mkdirSync(`${root}/etc`, { recursive: true });
  mkdirSync(`${root}/usr/bin`, { recursive: true });
  mkdirSync(`${root}/home/user/.cache`, { recursive: true });
  mkdirSync(`${root}/ro`, { mode: 0o555 });
  writeFileSync(`${root}/etc/os-release`, 'ID=imp\nVERSION_ID=1\n');
  writeFileSync(`${root}/usr/bin/ping`, Buffer.alloc(70_000, 7));
  lsetxattr(`${root}/usr/bin/ping`, 'security.capability', CAP_NET_RAW);
  chmodSync(`${root}/usr/bin/ping`, 0o4755);
  writeFileSync(`${root}/home/user/data`, Buffer.concat([Buffer.alloc(3000, 1), Buffer.alloc(5000)]));
  chownSync(`${root}/home/user`, 1000, 1000);
  chownSync(`${root}/home/user/data`, 1000, 100);
  lsetxattr(`${root}/home/user/data`, 'user.binary', BINARY);
  lsetxattr(`${root}/home/user`, 'user.dir', Buffer.from('on a directory'));
  writeFileSync(`${root}/usr/bin/sgid`, '#!/bin/sh\n');
  chownSync(`${root}/usr/bin/sgid`, 0, 42);
  chmodSync(`${root}/usr/bin/sgid`, 0o2711);
  linkSync(`${root}/usr/bin/ping`, `${root}/usr/bin/ping6`);
  linkSync(`${root}/usr/bin/ping`, `${root}/home/user/ping-hard`);
  symlinkSync('/usr/bin/ping', `${root}/usr/bin/ping-abs`);
  symlinkSync('../../../../../etc/shadow', `${root}/home/user/escape`);
  symlinkSync('usr/bin', `${root}/bin`);
  const long = `${root}/home/user/${'d'.repeat(120)}`;
  mkdirSync(long);
  writeFileSync(`${long}/${'f'.repeat(150)}`, 'long name');
  writeFileSync(`${root}/home/user/ünïcödé`, 'utf8');
  writeFileSync(`${root}/empty`, '');
  chownSync(`${root}/empty`, 4000000, 4000000);
  utimensat(AT.FDCWD, `${root}/etc/os-release`, { sec: 1n, nsec: 0 }, { sec: 1234567890n, nsec: 123456789 });
  utimesSync(`${root}/etc`, 1000, 1000);
  chmodSync(`${root}/home/user/.cache`, 0o1777);
}

export interface Node {
  path: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  mtimeNs: bigint;
  link?: string;
  data?: string;
  xattrs: Record<string, string>;
  /** Index of the first path sharing this inode, for hard links. */
  inodeGroup: string;
}

export function snapshotTree(root: string): Node[] {
  const out: Node[] = [];
  const firstByIno = new Map<string, string>();
  const walk = (rel: string) => {
    const p = rel === '' ? root : `${root}/${rel}`;
    const st = lstatSync(p, { bigint: true });
    const type = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'link' : st.isFile() ? 'file' : 'other';
    const xattrs: Record<string, string> = {};
    if (type !== 'link') for (const n of llistxattr(p).sort()) xattrs[n] = lgetxattr(p, n)!.toString('hex');
    const ino = String(st.ino);
    if (!firstByIno.has(ino)) firstByIno.set(ino, rel);
    const node: Node = {
      path: rel,
      type,
      mode: Number(st.mode),
      uid: Number(st.uid),
      gid: Number(st.gid),
      // Directories' mtimes are set last, so they compare too; symlinks' as well.
      mtimeNs: st.mtimeNs,
      xattrs,
      inodeGroup: type === 'dir' ? rel : firstByIno.get(ino)!,
    };
    if (type === 'link') node.link = readlinkSync(p);
    if (type === 'file') node.data = createHash('sha256').update(readFileSync(p)).digest('hex');
    out.push(node);
    if (type === 'dir') for (const n of readdirSync(p).sort()) walk(rel === '' ? n : `${rel}/${n}`);
  };
  walk('');
  return out;
}
