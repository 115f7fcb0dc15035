import { SdError, SyscallError } from '@sd/sys';

/**
 * A D-Bus error reply: `name` is the error name sent on the wire
 * (org.freedesktop.DBus.Error.AccessDenied...). Handlers throw it; other
 * errors are mapped from their errno code the way sd-bus maps errnos.
 */
export class BusError extends SdError {
  readonly busName: string;
  constructor(busName: string, message: string, options?: ErrorOptions) {
    super(busName.split('.').pop() ?? 'EBUS', message, options);
    this.busName = busName;
  }
}

export const DBUS_ERROR = {
  Failed: 'org.freedesktop.DBus.Error.Failed',
  AccessDenied: 'org.freedesktop.DBus.Error.AccessDenied',
  InvalidArgs: 'org.freedesktop.DBus.Error.InvalidArgs',
  UnknownMethod: 'org.freedesktop.DBus.Error.UnknownMethod',
  UnknownObject: 'org.freedesktop.DBus.Error.UnknownObject',
  UnknownInterface: 'org.freedesktop.DBus.Error.UnknownInterface',
  UnknownProperty: 'org.freedesktop.DBus.Error.UnknownProperty',
  PropertyReadOnly: 'org.freedesktop.DBus.Error.PropertyReadOnly',
  NotSupported: 'org.freedesktop.DBus.Error.NotSupported',
  FileNotFound: 'org.freedesktop.DBus.Error.FileNotFound',
  FileExists: 'org.freedesktop.DBus.Error.FileExists',
  NoMemory: 'org.freedesktop.DBus.Error.NoMemory',
  IOError: 'org.freedesktop.DBus.Error.IOError',
  Timeout: 'org.freedesktop.DBus.Error.Timeout',
  LimitsExceeded: 'org.freedesktop.DBus.Error.LimitsExceeded',
  UnixProcessIdUnknown: 'org.freedesktop.DBus.Error.UnixProcessIdUnknown',
  InconsistentMessage: 'org.freedesktop.DBus.Error.InconsistentMessage',
} as const;

/** machined's own error names (systemd's bus-common-errors). */
export const MACHINE_ERROR = {
  NoSuchMachine: 'org.freedesktop.machine1.NoSuchMachine',
  NoSuchImage: 'org.freedesktop.machine1.NoSuchImage',
  NoMachineForPID: 'org.freedesktop.machine1.NoMachineForPID',
  MachineExists: 'org.freedesktop.machine1.MachineExists',
  NoPrivateNetworking: 'org.freedesktop.machine1.NoPrivateNetworking',
  NoSuchUserMapping: 'org.freedesktop.machine1.NoSuchUserMapping',
  NoSuchGroupMapping: 'org.freedesktop.machine1.NoSuchGroupMapping',
} as const;

// sd-bus's errno → error name table, for the errnos we meet.
const ERRNO_NAMES: Record<string, string> = {
  ENOMEM: DBUS_ERROR.NoMemory,
  EPERM: DBUS_ERROR.AccessDenied,
  EACCES: DBUS_ERROR.AccessDenied,
  EINVAL: DBUS_ERROR.InvalidArgs,
  ESRCH: DBUS_ERROR.UnixProcessIdUnknown,
  ENOENT: DBUS_ERROR.FileNotFound,
  EEXIST: DBUS_ERROR.FileExists,
  ETIMEDOUT: DBUS_ERROR.Timeout,
  EIO: DBUS_ERROR.IOError,
  ENOTSUP: DBUS_ERROR.NotSupported,
  EOPNOTSUPP: DBUS_ERROR.NotSupported,
  ENOSYS: DBUS_ERROR.NotSupported,
  EBADMSG: DBUS_ERROR.InconsistentMessage,
  ENOBUFS: DBUS_ERROR.LimitsExceeded,
};

/** The wire error name and text for anything a handler threw. */
export function toBusError(e: unknown): { name: string; message: string } {
  if (e instanceof BusError) return { name: e.busName, message: e.message };
  if (e instanceof SdError) {
    const name =
      ERRNO_NAMES[e.code] ??
      (e instanceof SyscallError || /^E[A-Z0-9]+$/.test(e.code)
        ? `System.Error.${e.code}`
        : DBUS_ERROR.Failed);
    return { name, message: e.message };
  }
  const err = e as NodeJS.ErrnoException;
  if (err && typeof err.code === 'string' && ERRNO_NAMES[err.code])
    return { name: ERRNO_NAMES[err.code]!, message: err.message };
  return { name: DBUS_ERROR.Failed, message: err instanceof Error ? err.message : String(e) };
}

export const accessDenied = (): BusError => new BusError(DBUS_ERROR.AccessDenied, 'Access denied');
