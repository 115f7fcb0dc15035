import { NspawnError } from '../errors.js';
import type { BindMount, OverlayMount, TmpfsMount } from './settings.js';

/**
 * The mount specifications of --bind, --bind-ro, --tmpfs, --overlay,
 * --overlay-ro and --inaccessible (and their .nspawn keys): colon-separated,
 * with `\:` for a colon inside a path.
 */

function splitColons(value: string): string[] {
  const parts: string[] = [];
  let cur = '';
  for (let i = 0; i < value.length; i++) {
    const ch = value[i]!;
    if (ch === '\\' && value[i + 1] === ':') {
      cur += ':';
      i++;
    } else if (ch === ':') {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  parts.push(cur);
  return parts;
}

function normalizePath(path: string, what: string, spec: string): string {
  if (path.startsWith('+'))
    throw new NspawnError(
      'EOPNOTSUPP',
      `${what} ${path} in '${spec}': paths relative to the container (+) are not supported yet`,
    );
  if (!path.startsWith('/'))
    throw new NspawnError('EINVAL', `${what} ${JSON.stringify(path)} in '${spec}' is not an absolute path`);
  if (path.includes('\0')) throw new NspawnError('EINVAL', `${what} in '${spec}' contains a NUL byte`);
  const parts = path.split('/').filter((p) => p && p !== '.');
  if (parts.includes('..')) throw new NspawnError('EINVAL', `${what} ${path} in '${spec}' contains '..'`);
  return `/${parts.join('/')}`;
}

export function parseBind(spec: string, readOnly: boolean): BindMount {
  const parts = splitColons(spec);
  if (parts.length > 3 || !parts[0])
    throw new NspawnError('EINVAL', `Invalid bind mount specification: '${spec}'`);
  const source = normalizePath(parts[0], 'Bind source', spec);
  const destination = normalizePath(parts[1] || parts[0], 'Bind destination', spec);
  const bind: BindMount = { source, destination, readOnly, recursive: true };
  for (const opt of (parts[2] ?? '').split(',').filter(Boolean)) {
    if (opt === 'rbind') bind.recursive = true;
    else if (opt === 'norbind') bind.recursive = false;
    else if (opt === 'idmap') bind.idmap = true;
    else if (opt === 'noidmap') bind.idmap = false;
    else throw new NspawnError('EINVAL', `Invalid bind mount option '${opt}' in '${spec}'`);
  }
  return bind;
}

export function parseTmpfs(spec: string): TmpfsMount {
  const i = spec.search(/(?<!\\):/);
  const path = i < 0 ? spec : spec.slice(0, i);
  const options = i < 0 ? 'mode=0755' : spec.slice(i + 1);
  return { destination: normalizePath(path.replaceAll('\\:', ':'), 'Tmpfs path', spec), options };
}

export function parseOverlay(spec: string, readOnly: boolean): OverlayMount {
  const parts = splitColons(spec);
  const min = readOnly ? 2 : 3;
  if (parts.length < min)
    throw new NspawnError(
      'EINVAL',
      `Invalid overlay specification '${spec}': needs ${readOnly ? 'LOWER:DESTINATION' : 'LOWER:UPPER:DESTINATION'} (at least ${min} paths)`,
    );
  const paths = parts.map((p, n) =>
    normalizePath(p, n === parts.length - 1 ? 'Overlay destination' : 'Overlay directory', spec),
  );
  for (const p of paths.slice(0, -1))
    if (/[,:]/.test(p))
      throw new NspawnError('EINVAL', `Overlay directory ${p} in '${spec}' may not contain ',' or ':'`);
  const destination = paths.at(-1)!;
  if (readOnly) return { lower: paths.slice(0, -1), destination, readOnly };
  return { lower: paths.slice(0, -2), upper: paths.at(-2)!, destination, readOnly };
}

export function parseInaccessible(spec: string): string {
  return normalizePath(spec, 'Inaccessible path', spec);
}
