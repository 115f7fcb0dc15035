import { InvalidArgumentError } from '@sd/sys';

/**
 * Machine names follow systemd's hostname rules (hostname_is_valid() with
 * ".host" allowed): dot-separated labels of letters, digits and '-', no
 * label that starts or ends with '-', no empty label, at most 64 bytes.
 */

export const HOST_NAME_MAX = 64;

export function isValidMachineName(name: string): boolean {
  if (name === '.host') return true;
  if (name === '' || Buffer.byteLength(name) > HOST_NAME_MAX) return false;
  return name.split('.').every((label) => /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$/.test(label));
}

export function assertValidMachineName(name: unknown): string {
  if (typeof name !== 'string' || !isValidMachineName(name))
    throw new InvalidArgumentError(`Invalid machine name: ${JSON.stringify(name)}`);
  return name;
}

/** systemd's unit name escaping: bytes outside [A-Za-z0-9:_.] (and a leading '.') become \xNN. */
export function escapeUnitName(name: string): string {
  let out = '';
  for (const [i, b] of [...Buffer.from(name)].entries()) {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9:_]/.test(c) || (c === '.' && i > 0)) out += c;
    else out += `\\x${b.toString(16).padStart(2, '0')}`;
  }
  return out;
}

/** The scope systemd-machined would create: machine-NAME.scope (escaped). */
export function scopeUnitName(machine: string): string {
  return `machine-${escapeUnitName(machine)}.scope`;
}

export const MACHINE_CLASSES = ['container', 'vm', 'host'] as const;
export type MachineClass = (typeof MACHINE_CLASSES)[number];
