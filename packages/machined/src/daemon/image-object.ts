import { SdError } from '@sd/sys';
import { BusError, DBUS_ERROR, MACHINE_ERROR } from '../bus/errors.js';
import type { InterfaceSpec } from '../bus/types.js';
import { imageObjectPath } from '../bus-label.js';
import type { ImageInfo, ImagePool } from '../images/types.js';
import { requireRoot } from './auth.js';

export const IMAGE_INTERFACE = 'org.freedesktop.machine1.Image';
export const UINT64_MAX = 0xffffffffffffffffn;

/** Runs a pool call, turning "no such image" into machined's error name. */
export async function imageCall<T>(name: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof SdError && e.code === 'ENOENT' && !(e instanceof BusError))
      throw new BusError(MACHINE_ERROR.NoSuchImage, `No image '${name}' known`, { cause: e });
    throw e;
  }
}

export function requirePool(pool: ImagePool | undefined): ImagePool {
  if (!pool) throw new BusError(DBUS_ERROR.NotSupported, 'No image pool is configured in this daemon');
  return pool;
}

export async function getImage(pool: ImagePool, name: string): Promise<ImageInfo> {
  const info = await imageCall(name, () => pool.get(name));
  if (!info) throw new BusError(MACHINE_ERROR.NoSuchImage, `No image '${name}' known`);
  return info;
}

/** A ListImages row: name, type, read-only, crtime, mtime, usage, object. */
export function imageRow(i: ImageInfo): [string, string, boolean, bigint, bigint, bigint, string] {
  return [i.name, i.type, i.readOnly, i.crtime, i.mtime, i.usage, imageObjectPath(i.name)];
}

/** The image methods shared by the Manager (by name) and the Image objects. */
export function imageActions(pool: ImagePool | undefined) {
  const p = () => requirePool(pool);
  return {
    remove: (name: string) => imageCall(name, () => p().remove(name)),
    rename: (name: string, to: string) => imageCall(name, () => p().rename(name, to)),
    clone: (name: string, to: string, ro: boolean) => imageCall(name, () => p().clone(name, to, ro)),
    markReadOnly: (name: string, ro: boolean) => imageCall(name, () => p().markReadOnly(name, ro)),
    setLimit: (name: string, bytes: bigint) => imageCall(name, () => p().setLimit(name, BigInt(bytes))),
    hostname: (name: string) => imageCall(name, () => p().hostname(name)),
    machineId: (name: string) => imageCall(name, () => p().machineId(name)),
    machineInfo: (name: string) => imageCall(name, () => p().machineInfo(name)),
    osRelease: (name: string) => imageCall(name, () => p().osRelease(name)),
  };
}

/** The org.freedesktop.machine1.Image interface of the image called `name`. */
export function imageInterface(name: string, pool: ImagePool | undefined): InterfaceSpec {
  const act = imageActions(pool);
  const prop = (type: string, pick: (i: ImageInfo) => unknown) => ({
    type,
    get: async () => pick(await getImage(requirePool(pool), name)),
  });
  return {
    name: IMAGE_INTERFACE,
    methods: {
      Remove: {
        handler: async (ctx) => {
          await requireRoot(ctx);
          await act.remove(name);
        },
      },
      Rename: {
        in: 's',
        inNames: ['new_name'],
        handler: async (ctx, to: string) => {
          await requireRoot(ctx);
          await act.rename(name, to);
        },
      },
      Clone: {
        in: 'sb',
        inNames: ['new_name', 'read_only'],
        handler: async (ctx, to: string, ro: boolean) => {
          await requireRoot(ctx);
          await act.clone(name, to, ro);
        },
      },
      MarkReadOnly: {
        in: 'b',
        inNames: ['read_only'],
        handler: async (ctx, ro: boolean) => {
          await requireRoot(ctx);
          await act.markReadOnly(name, ro);
        },
      },
      SetLimit: {
        in: 't',
        inNames: ['limit'],
        handler: async (ctx, bytes: bigint) => {
          await requireRoot(ctx);
          await act.setLimit(name, bytes);
        },
      },
      GetHostname: { out: 's', outNames: ['hostname'], handler: () => act.hostname(name) },
      GetMachineID: { out: 'ay', outNames: ['id'], handler: () => act.machineId(name) },
      GetMachineInfo: { out: 'a{ss}', outNames: ['machine_info'], handler: () => act.machineInfo(name) },
      GetOSRelease: { out: 'a{ss}', outNames: ['os_release'], handler: () => act.osRelease(name) },
    },
    properties: {
      Name: prop('s', (i) => i.name),
      Path: prop('s', (i) => i.path),
      Type: prop('s', (i) => i.type),
      ReadOnly: prop('b', (i) => i.readOnly),
      CreationTimestamp: prop('t', (i) => i.crtime),
      ModificationTimestamp: prop('t', (i) => i.mtime),
      Usage: prop('t', (i) => i.usage),
      Limit: prop('t', (i) => i.limit),
      UsageExclusive: prop('t', (i) => i.usageExclusive),
      LimitExclusive: prop('t', (i) => i.limitExclusive),
    },
  };
}
