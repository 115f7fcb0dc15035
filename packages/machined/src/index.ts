export { connectBus, systemBusAddress } from './bus/connect.js';
export type { Message, MessageBus } from './bus/dbus.js';
export { dbus } from './bus/dbus.js';
export { BusError, DBUS_ERROR, MACHINE_ERROR } from './bus/errors.js';
export type { ObjectSource } from './bus/service.js';
export { BusService } from './bus/service.js';
export type { CallContext, InterfaceSpec, MethodSpec, PropertySpec, SignalSpec } from './bus/types.js';
export {
  busLabelEscape,
  busLabelUnescape,
  imageObjectPath,
  MACHINE1_PATH,
  machineObjectPath,
  nameFromObjectPath,
} from './bus-label.js';
export type { MachinedEvents, MachinedOptions } from './daemon/daemon.js';
export { MACHINE1_BUS_NAME, Machined } from './daemon/daemon.js';
export * from './images/index.js';
export { TRANSFER_VERBS } from './machinectl/args.js';
export type { TransferIo, TransferOptions } from './machinectl/verbs-transfers.js';
export { transferVerb } from './machinectl/verbs-transfers.js';
export type { MachinedPaths } from './paths.js';
export { defaultPaths } from './paths.js';
export type { CgroupPlacement } from './registry/cgroup.js';
export { MachineCgroup } from './registry/cgroup.js';
export type { MachineInit, MachineState } from './registry/machine.js';
export { Machine } from './registry/machine.js';
export type { MachineClass } from './registry/names.js';
export { assertValidMachineName, isValidMachineName, scopeUnitName } from './registry/names.js';
export type { MachineRequest, RegistryEvents, RegistryOptions } from './registry/registry.js';
export { MachineExistsError, Registry } from './registry/registry.js';
export type { ScopeBackend } from './registry/scope.js';
export { CgroupfsScopeBackend, SystemdScopeBackend, systemdBooted } from './registry/scope.js';
