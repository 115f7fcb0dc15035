import { ArchiveError } from '../errors.js';

/**
 * POSIX ACLs as tar carries them: star's and GNU tar's PAX records
 * `SCHILY.acl.access` / `SCHILY.acl.default` hold the text form
 * (`user::rw-,user:1000:r--,group::r--,mask::r--,other::r--`), the kernel
 * takes the binary `system.posix_acl_*` xattr. Hostile text is refused
 * with an ArchiveError. Ids are numeric: a name would have to be looked up
 * in the host's user database, which says nothing about the image's users
 * (star's fourth field, the numeric id, is used when present).
 */

export const ACL_XATTR = { access: 'system.posix_acl_access', default: 'system.posix_acl_default' } as const;
export const ACL_PAX = { access: 'SCHILY.acl.access', default: 'SCHILY.acl.default' } as const;

const TAG = { USER_OBJ: 1, USER: 2, GROUP_OBJ: 4, GROUP: 8, MASK: 0x10, OTHER: 0x20 } as const;
const UNDEFINED_ID = 0xffffffff;
const VERSION = 2;
/** More entries than any real ACL has (the kernel's own limit is near 8k on 4 KiB xattrs). */
const MAX_ENTRIES = 8192;

interface AclEntry {
  tag: number;
  perm: number;
  id: number;
}

const TAG_NAMES: Record<string, number> = {
  user: TAG.USER_OBJ,
  u: TAG.USER_OBJ,
  group: TAG.GROUP_OBJ,
  g: TAG.GROUP_OBJ,
  mask: TAG.MASK,
  m: TAG.MASK,
  other: TAG.OTHER,
  o: TAG.OTHER,
};

function parsePerm(s: string, bad: () => ArchiveError): number {
  if (s.length === 0 || s.length > 3) throw bad();
  let perm = 0;
  for (const ch of s) {
    const bit = ch === 'r' ? 4 : ch === 'w' ? 2 : ch === 'x' ? 1 : ch === '-' ? 0 : -1;
    if (bit < 0 || (bit !== 0 && perm & bit)) throw bad();
    perm |= bit;
  }
  return perm;
}

function parseId(s: string): number | undefined {
  if (!/^\d{1,10}$/.test(s)) return undefined;
  const n = Number(s);
  return n <= 0xfffffffe ? n : undefined;
}

/** Checks what the kernel requires (one of each object entry, a mask with named entries, no duplicates) and sorts. */
function validate(entries: AclEntry[], what: string): AclEntry[] {
  const count = (t: number) => entries.filter((e) => e.tag === t).length;
  for (const t of [TAG.USER_OBJ, TAG.GROUP_OBJ, TAG.OTHER])
    if (count(t) !== 1)
      throw new ArchiveError(`${what}: the ACL needs exactly one user::, group:: and other:: entry`);
  if (count(TAG.MASK) > 1) throw new ArchiveError(`${what}: the ACL has more than one mask:: entry`);
  const named = entries.filter((e) => e.tag === TAG.USER || e.tag === TAG.GROUP);
  if (named.length > 0 && count(TAG.MASK) === 0)
    throw new ArchiveError(`${what}: the ACL has named entries but no mask:: entry`);
  const seen = new Set<string>();
  for (const e of named) {
    const k = `${e.tag}:${e.id}`;
    if (seen.has(k)) throw new ArchiveError(`${what}: the ACL names id ${e.id} twice`);
    seen.add(k);
  }
  return entries.sort((a, b) => a.tag - b.tag || a.id - b.id);
}

/** The text form (acl_to_text's, commas or newlines, `#` comments) as the kernel's xattr value. */
export function aclTextToXattr(text: string, what: string): Buffer {
  const entries: AclEntry[] = [];
  const items = text
    .split(/[,\n]/)
    .map((s) => s.replace(/#.*$/, '').trim())
    .filter((s) => s !== '');
  if (items.length === 0) throw new ArchiveError(`${what}: the ACL is empty`);
  if (items.length > MAX_ENTRIES) throw new ArchiveError(`${what}: the ACL has too many entries`);
  for (const item of items) {
    const bad = () => new ArchiveError(`${what}: invalid ACL entry ${JSON.stringify(item.slice(0, 80))}`);
    const f = item.split(':');
    if (f.length !== 3 && f.length !== 4) throw bad();
    const [tagName, qual, permText, numeric] = f as [string, string, string, string | undefined];
    let tag = TAG_NAMES[tagName];
    if (tag === undefined) throw bad();
    const perm = parsePerm(permText, bad);
    let id = UNDEFINED_ID;
    if (qual !== '') {
      if (tag === TAG.MASK || tag === TAG.OTHER) throw bad();
      tag = tag === TAG.USER_OBJ ? TAG.USER : TAG.GROUP;
      const n = parseId(numeric ?? qual);
      if (n === undefined) {
        if (numeric !== undefined) throw bad();
        throw new ArchiveError(
          `${what}: ACL entry ${JSON.stringify(item.slice(0, 80))} names a user or group without a numeric id`,
        );
      }
      id = n;
    } else if (numeric !== undefined) throw bad();
    entries.push({ tag, perm, id });
  }
  const sorted = validate(entries, what);
  const b = Buffer.alloc(4 + 8 * sorted.length);
  b.writeUInt32LE(VERSION, 0);
  sorted.forEach((e, i) => {
    b.writeUInt16LE(e.tag, 4 + 8 * i);
    b.writeUInt16LE(e.perm, 6 + 8 * i);
    b.writeUInt32LE(e.id, 8 + 8 * i);
  });
  return b;
}

function decodeXattr(value: Buffer, what: string): AclEntry[] {
  if (value.length < 4 || (value.length - 4) % 8 !== 0 || value.readUInt32LE(0) !== VERSION)
    throw new ArchiveError(`${what}: not a POSIX ACL xattr value`);
  const entries: AclEntry[] = [];
  for (let off = 4; off < value.length; off += 8)
    entries.push({
      tag: value.readUInt16LE(off),
      perm: value.readUInt16LE(off + 2),
      id: value.readUInt32LE(off + 4),
    });
  return entries;
}

/** The kernel's xattr value as text with numeric ids, as GNU tar and star read it. */
export function aclXattrToText(value: Buffer, what: string): string {
  const perm = (p: number) => `${p & 4 ? 'r' : '-'}${p & 2 ? 'w' : '-'}${p & 1 ? 'x' : '-'}`;
  return decodeXattr(value, what)
    .map((e) => {
      switch (e.tag) {
        case TAG.USER_OBJ:
          return `user::${perm(e.perm)}`;
        case TAG.USER:
          return `user:${e.id}:${perm(e.perm)}`;
        case TAG.GROUP_OBJ:
          return `group::${perm(e.perm)}`;
        case TAG.GROUP:
          return `group:${e.id}:${perm(e.perm)}`;
        case TAG.MASK:
          return `mask::${perm(e.perm)}`;
        case TAG.OTHER:
          return `other::${perm(e.perm)}`;
        default:
          throw new ArchiveError(`${what}: unknown ACL tag ${e.tag}`);
      }
    })
    .join(',');
}

/** An ACL xattr value with its named user and group ids moved by `shift` (a user-namespaced pool). */
export function shiftAclXattr(value: Buffer, shift: number, what: string): Buffer {
  const entries = decodeXattr(value, what);
  const out = Buffer.from(value);
  entries.forEach((e, i) => {
    if (e.tag !== TAG.USER && e.tag !== TAG.GROUP) return;
    const id = e.id + shift;
    if (id > 0xfffffffe)
      throw new ArchiveError(`${what}: ACL id ${e.id} shifted by ${shift} is out of range`);
    out.writeUInt32LE(id, 8 + 8 * i);
  });
  return out;
}
