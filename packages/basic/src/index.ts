// @sd/basic: the systemd conventions several sd packages share (systemd's
// src/basic and src/shared), and the one CLI layer every sd command uses.

export type { Message, MessageBus, Variant } from './bus/bus.js';
export {
  busReachable,
  type ConnectOptions,
  connectBus,
  type DBus,
  dbusNext,
  systemBusAddress,
} from './bus/bus.js';
export { type BusCall, BusCallFailed, BusConnection } from './bus/connection.js';
export { type BusType, BusWireError, marshal, parseSignature, unmarshal } from './bus/wire.js';
export { type CodeCacheOptions, codeCacheFiles, runCached } from './cli/code-cache.js';
export {
  busAddressOption,
  type DaemonArgs,
  parseDaemonCommandLine,
  refusedTransportOptions,
  refusePositionals,
  storeOption,
} from './cli/daemon.js';
export { formatHelp, formatOption, type HelpSpec } from './cli/help.js';
export {
  type ArgKind,
  flagOption,
  type OptionDef,
  type OptionSpec,
  type ParseConfig,
  type Parsed,
  parseCommandLine,
  refusedOption,
  UsageError,
  valueOption,
} from './cli/options.js';
export {
  formatJson,
  type JsonMode,
  type OutputFlags,
  outputOptions,
  parseJsonMode,
  useColor,
  writeFd,
} from './cli/output.js';
export { answerHelpOrVersion, errorLine, packageVersion, runMain } from './cli/run.js';
export {
  assertValidMachineName,
  cleanupHostname,
  HOST_NAME_MAX,
  type HostnameRules,
  isValidHostname,
  isValidMachineName,
  machineNameFromPath,
} from './names/hostname.js';
export {
  assertImageName,
  HOST_IMAGE,
  imageNameIsValid,
  isHiddenImage,
  withoutRawSuffix,
} from './names/image.js';
export { parseBoolean, tryParseBoolean } from './parse/boolean.js';
export { parseSignal, SIGRTMAX, SIGRTMIN, signalName } from './parse/signal.js';
export { parseSize, SIZE_INFINITY } from './parse/size.js';
export { parseTimespan, USEC_INFINITY } from './parse/timespan.js';
export {
  MACHINE_IMAGE_SEARCH_PATH,
  MACHINE_POOL_DIR,
  MACHINES_STATE_DIR,
  NSPAWN_SETTINGS_DIRS,
  systemdBooted,
  under,
} from './systemd/paths.js';
export {
  cutAtMachineUnit,
  escapeUnitName,
  isMachineScopePath,
  isMachineUnitPath,
  MACHINE_SLICE,
  machineScopeName,
  machineScopePath,
  removeEmptyMachineSlices,
  SYSTEMD_V1_CONTROLLERS,
  systemdHierarchies,
} from './systemd/units.js';
