import { closeSync, existsSync, openSync, readSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { withoutRawSuffix } from '@sd/basic';
import { NspawnError } from '../errors.js';
import { type MergeResult, mergeSettingsFile, parseSettingsFile } from './file.js';
import type { Settings } from './settings.js';

/** Where .nspawn files are looked up: trusted directories first, then next to the image. */
export interface SettingsPaths {
  trusted: string[];
}

export const DEFAULT_SETTINGS_PATHS: SettingsPaths = {
  trusted: ['/etc/systemd/nspawn', '/run/systemd/nspawn'],
};

export interface FoundSettingsFile {
  path: string;
  trusted: boolean;
}

/** NAME.nspawn in the trusted directories, else next to the tree (untrusted unless --settings=trusted). */
export function findSettingsFile(
  machine: string,
  directory: string | undefined,
  mode: Settings['settingsMode'],
  paths: SettingsPaths = DEFAULT_SETTINGS_PATHS,
): FoundSettingsFile | undefined {
  if (mode === 'no') return undefined;
  for (const dir of paths.trusted) {
    const p = join(dir, `${machine}.nspawn`);
    if (existsSync(p)) return { path: p, trusted: true };
  }
  if (directory && directory !== '/') {
    const p = join(dirname(directory), `${withoutRawSuffix(basename(directory))}.nspawn`);
    if (existsSync(p)) return { path: p, trusted: mode === 'trusted' };
  }
  return undefined;
}

function readLimited(path: string, limit = 1 << 20): string {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(limit + 1);
    const n = readSync(fd, buf, 0, buf.length, 0);
    if (n > limit) throw new NspawnError('EFBIG', `Settings file ${path} is larger than ${limit} bytes`);
    return buf.toString('utf8', 0, n);
  } finally {
    closeSync(fd);
  }
}

/** Loads and applies the machine's .nspawn file, if any. */
export function applySettingsFile(
  settings: Settings,
  explicit: ReadonlySet<keyof Settings>,
  machine: string,
  paths?: SettingsPaths,
): MergeResult & { file?: FoundSettingsFile } {
  const found = findSettingsFile(machine, settings.directory, settings.settingsMode, paths);
  if (!found) return { settings, notices: [] };
  const parsed = parseSettingsFile(readLimited(found.path), found.path);
  return { ...mergeSettingsFile(settings, explicit, parsed, found.trusted), file: found };
}
