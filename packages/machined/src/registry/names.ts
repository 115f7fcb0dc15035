import { InvalidArgumentError, machineScopeName } from '@sd/sys';

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

/** The scope systemd-machined would create: machine-NAME.scope (escaped). */
export const scopeUnitName = machineScopeName;

export const MACHINE_CLASSES = ['container', 'vm', 'host'] as const;
export type MachineClass = (typeof MACHINE_CLASSES)[number];
