import { readSync } from 'node:fs';
import {
  AT,
  closeQuietly,
  type DirEntry,
  type FullStat,
  fgetxattr,
  flistxattr,
  O,
  openat,
  readDirFd,
  readlinkat,
  S_IF,
  SdError,
  statxFull,
} from '@sd/sys';
import type { EntryType, TarEntry } from '../tar/header.js';
import { END_OF_ARCHIVE, encodeHeader, paddingFor } from '../tar/writer.js';

/**
 * Walks an image tree by fds (openat O_NOFOLLOW from the root, never by
 * joined path strings) and yields it as a pax archive: owners, modes,
 * nanosecond mtimes, xattrs with binary values, symlinks as links, hard
 * links once with links after, device nodes and fifos. Sockets are left
 * out (tar cannot hold them). Output comes in ~1 MiB chunks.
 */

const BATCH = 1024 * 1024;

function typeOf(mode: number): EntryType | undefined {
  switch (mode & S_IF.MT) {
    case S_IF.REG:
      return 'file';
    case S_IF.DIR:
      return 'directory';
    case S_IF.LNK:
      return 'symlink';
    case S_IF.CHR:
      return 'char';
    case S_IF.BLK:
      return 'block';
    case S_IF.FIFO:
      return 'fifo';
    default:
      return undefined;
  }
}

function xattrsOf(fd: number, path: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const name of flistxattr(fd, path)) {
    const v = fgetxattr(fd, name, path);
    if (v !== undefined) out.set(name, Buffer.from(v));
  }
  return out;
}

function entryOf(path: string, st: FullStat, type: EntryType): TarEntry {
  return {
    path,
    type,
    mode: st.mode & 0o7777,
    uid: st.uid,
    gid: st.gid,
    size: type === 'file' ? Number(st.size) : 0,
    mtime: { sec: st.mtime.sec, nsec: st.mtime.nsec },
    linkname: '',
    devmajor: type === 'char' || type === 'block' ? st.rdevMajor : 0,
    devminor: type === 'char' || type === 'block' ? st.rdevMinor : 0,
    xattrs: new Map(),
  };
}

interface Frame {
  fd: number;
  path: string;
  entries: DirEntry[];
  next: number;
}

export async function* tarTree(rootPath: string, signal?: AbortSignal): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let pendingLen = 0;
  const push = (b: Buffer) => {
    pending.push(b);
    pendingLen += b.length;
  };
  const flush = (): Buffer => {
    const out = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingLen);
    pending = [];
    pendingLen = 0;
    return out;
  };
  const links = new Map<string, string>();
  const dirent = Buffer.alloc(64 * 1024);
  const rootFd = openat(AT.FDCWD, rootPath, O.RDONLY | O.DIRECTORY);
  const stack: Frame[] = [];
  try {
    const rootSt = statxFull(rootFd, '', AT.EMPTY_PATH);
    push(encodeHeader({ ...entryOf('./', rootSt, 'directory'), xattrs: xattrsOf(rootFd, rootPath) }));
    stack.push({ fd: rootFd, path: '', entries: sortByName(readDirFd(rootFd, rootPath, dirent)), next: 0 });
    const readBuf = Buffer.allocUnsafeSlow(BATCH);
    while (stack.length > 0) {
      if (signal?.aborted) throw signal.reason ?? new Error('aborted');
      const top = stack[stack.length - 1]!;
      if (top.next >= top.entries.length) {
        stack.pop();
        if (top.fd !== rootFd) closeQuietly(top.fd);
        continue;
      }
      const { name } = top.entries[top.next++]!;
      const path = top.path === '' ? name : `${top.path}/${name}`;
      const st = statxFull(top.fd, name, AT.SYMLINK_NOFOLLOW);
      const type = typeOf(st.mode);
      if (type === undefined) continue;
      const e = entryOf(type === 'directory' ? `${path}/` : path, st, type);
      if (type !== 'directory' && st.nlink > 1) {
        const key = `${st.devMajor}:${st.devMinor}:${st.ino}`;
        const first = links.get(key);
        if (first !== undefined) {
          push(encodeHeader({ ...e, type: 'hardlink', size: 0, linkname: first }));
          continue;
        }
        links.set(key, path);
      }
      if (type === 'symlink') {
        e.linkname = readlinkat(top.fd, name);
        push(encodeHeader(e));
      } else if (type === 'directory') {
        const fd = openat(top.fd, name, O.RDONLY | O.DIRECTORY | O.NOFOLLOW);
        e.xattrs = xattrsOf(fd, path);
        push(encodeHeader(e));
        stack.push({ fd, path, entries: sortByName(readDirFd(fd, path, dirent)), next: 0 });
      } else if (type === 'file') {
        const fd = openat(top.fd, name, O.RDONLY | O.NOFOLLOW | O.NONBLOCK);
        try {
          e.xattrs = xattrsOf(fd, path);
          push(encodeHeader(e));
          let left = e.size;
          while (left > 0) {
            const n = readSync(fd, readBuf, 0, Math.min(left, readBuf.length), null);
            if (n === 0) throw new SdError('EIO', `${rootPath}/${path} shrank while being exported`);
            push(Buffer.from(readBuf.subarray(0, n)));
            left -= n;
            if (pendingLen >= BATCH) yield flush();
          }
          const pad = paddingFor(e.size);
          if (pad) push(Buffer.alloc(pad));
        } finally {
          closeQuietly(fd);
        }
      } else {
        push(encodeHeader(e));
      }
      if (pendingLen >= BATCH) yield flush();
    }
    push(END_OF_ARCHIVE);
    yield flush();
  } finally {
    for (const f of stack) if (f.fd !== rootFd) closeQuietly(f.fd);
    closeQuietly(rootFd);
  }
}

function sortByName(entries: DirEntry[]): DirEntry[] {
  return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
