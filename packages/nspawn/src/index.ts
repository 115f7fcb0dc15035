export type { HostnameRules } from '@sd/basic';
export {
  assertValidMachineName,
  cleanupHostname,
  HOST_NAME_MAX,
  isValidHostname,
  isValidMachineName,
  machineNameFromPath,
} from '@sd/basic';
export type { ContainerEvents, ContainerOptions } from './container/container.js';
export { Container, runContainer, startContainer } from './container/container.js';
export type { ContainerPlan, DetachedMounts } from './container/plan.js';
export { buildContainerProgram } from './container/plan.js';
export { capabilityMask, defaultSeccompFilter } from './container/security.js';
export { NspawnError } from './errors.js';
export type { RegisterOptions, RegisterRequest, Registration } from './register/register.js';
export { registerMachine } from './register/register.js';
export type { ParsedArgs } from './settings/argv.js';
export { HELP, parseArgv, parseSignal } from './settings/argv.js';
export type {
  ConsoleMode,
  PrivateUsers,
  ResolvConfMode,
  Settings,
  TimezoneMode,
  VolatileMode,
} from './settings/settings.js';
export { defaultSettings } from './settings/settings.js';
