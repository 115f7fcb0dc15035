/** The description of a bus object: interfaces with methods, properties and signals. */

/** What a method handler learns about its call. */
export interface CallContext {
  /** The caller's unique name (:1.42). */
  sender: string;
  path: string;
  /** The caller's uid, asked from the bus (GetConnectionUnixUser) on first use. */
  senderUid(): Promise<number>;
  /** Closes `fd` once the reply carrying it has been handed to the kernel. */
  closeAfterReply(fd: number): void;
}

export interface MethodSpec {
  /** Input signature, one complete type per argument. */
  in?: string;
  /** Output signature. */
  out?: string;
  /** Argument names for introspection (optional). */
  inNames?: readonly string[];
  outNames?: readonly string[];
  /**
   * Returns the single out value, an array of the out values when `out` has
   * more than one complete type, or nothing.
   */
  // biome-ignore lint/suspicious/noExplicitAny: D-Bus values are dynamically typed.
  handler: (ctx: CallContext, ...args: any[]) => unknown;
}

export interface PropertySpec {
  type: string;
  get: () => unknown | Promise<unknown>;
  /** org.freedesktop.DBus.Property.EmitsChangedSignal: 'const', 'false', 'invalidates'; default true. */
  emitsChanged?: 'const' | 'false' | 'invalidates';
}

export interface SignalSpec {
  type: string;
  names?: readonly string[];
}

export interface InterfaceSpec {
  name: string;
  methods?: Record<string, MethodSpec>;
  properties?: Record<string, PropertySpec>;
  signals?: Record<string, SignalSpec>;
}
