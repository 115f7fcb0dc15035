import { execFileSync } from 'node:child_process';

/**
 * A tree as the copy tests compare it with `cp -a`'s: each entry's path,
 * type/mode, owner, size, mtime, link count and link target; and every xattr.
 */
export function describeTree(dir: string): { entries: string; xattrs: string } {
  const entries = execFileSync('find', ['.', '-printf', '%P %M %U %G %s %T@ %n %l\\n'], { cwd: dir })
    .toString()
    .split('\n')
    .sort()
    .join('\n');
  const xattrs = execFileSync('getfattr', ['-R', '-h', '-d', '-m', '-', '.'], { cwd: dir })
    .toString()
    .split('\n')
    .sort()
    .join('\n');
  return { entries, xattrs };
}
