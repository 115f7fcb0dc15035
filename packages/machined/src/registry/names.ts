import { machineScopeName } from '@sd/basic';

// Machine names are systemd's hostname rules, kept in @sd/basic for nspawn and machined alike.
export { assertValidMachineName, HOST_NAME_MAX, isValidMachineName } from '@sd/basic';

/** The scope systemd-machined would create: machine-NAME.scope (escaped). */
export const scopeUnitName = machineScopeName;

export const MACHINE_CLASSES = ['container', 'vm', 'host'] as const;
export type MachineClass = (typeof MACHINE_CLASSES)[number];
