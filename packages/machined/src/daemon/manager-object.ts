import { BusError, MACHINE_ERROR } from '../bus/errors.js';
import type { CallContext, InterfaceSpec } from '../bus/types.js';
import { machineObjectPath } from '../bus-label.js';
import type { ImagePool } from '../images/types.js';
import type { Machine } from '../registry/machine.js';
import { MachineExistsError, type MachineRequest, type Registry } from '../registry/registry.js';
import { requireRoot } from './auth.js';
import { getImage, imageActions, imageCall, imageRow, requirePool, UINT64_MAX } from './image-object.js';
import * as ops from './operations.js';

export const MANAGER_INTERFACE = 'org.freedesktop.machine1.Manager';

export interface ManagerContext {
  registry: Registry;
  /** The registry's machines plus `.host`. */
  lookup(name: string): Machine | undefined;
  all(): Machine[];
  pool: ImagePool | undefined;
  poolPath: string;
  /** The pid of a bus peer (for leader 0 and GetMachineByPID(0)). */
  pidOf(sender: string): Promise<number>;
}

type Args = unknown[];

export function managerInterface(c: ManagerContext): InterfaceSpec {
  const machine = (name: string): Machine => {
    const m = typeof name === 'string' ? c.lookup(name) : undefined;
    if (!m) throw new BusError(MACHINE_ERROR.NoSuchMachine, `No machine '${name}' known`);
    return m;
  };
  const rooted =
    <A extends Args>(fn: (ctx: CallContext, ...a: A) => unknown) =>
    async (ctx: CallContext, ...a: A) => {
      await requireRoot(ctx);
      return fn(ctx, ...a);
    };
  const register = (mode: 'create' | 'register', withNet: boolean, withProps: boolean) =>
    rooted(async (ctx, ...a: Args) => {
      const [name, id, service, cls, leader, root] = a as [string, Buffer, string, string, number, string];
      const netif = withNet ? (a[6] as number[]) : [];
      const props = withProps ? (a[withNet ? 7 : 6] as Array<[string, unknown]>) : [];
      const req: MachineRequest = {
        name,
        id,
        service,
        class: cls,
        leader: leader === 0 ? await c.pidOf(ctx.sender) : leader,
        rootDirectory: root,
        netif,
        scopeProperties: props,
      };
      try {
        return (await c.registry.add(req, mode)).objectPath;
      } catch (e) {
        if (e instanceof MachineExistsError) throw new BusError(MACHINE_ERROR.MachineExists, e.message);
        throw e;
      }
    });
  const img = imageActions(c.pool);
  return {
    name: MANAGER_INTERFACE,
    methods: {
      GetMachine: {
        in: 's',
        out: 'o',
        inNames: ['name'],
        outNames: ['machine'],
        handler: (_, n: string) => machine(n).objectPath,
      },
      GetImage: {
        in: 's',
        out: 'o',
        inNames: ['name'],
        outNames: ['image'],
        handler: async (_, n: string) => imageRow(await getImage(requirePool(c.pool), n))[6],
      },
      GetMachineByPID: {
        in: 'u',
        out: 'o',
        inNames: ['pid'],
        outNames: ['machine'],
        handler: async (ctx, pid: number) => {
          const p = pid === 0 ? await c.pidOf(ctx.sender) : pid;
          const m = c.registry.byPid(p);
          if (!m)
            throw new BusError(
              MACHINE_ERROR.NoMachineForPID,
              `PID ${p} does not belong to any known machine`,
            );
          return m.objectPath;
        },
      },
      ListMachines: {
        out: 'a(ssso)',
        outNames: ['machines'],
        handler: () => c.all().map((m) => [m.name, m.class, m.service, m.objectPath]),
      },
      ListImages: {
        out: 'a(ssbttto)',
        outNames: ['images'],
        handler: async () => (c.pool ? (await c.pool.list()).map(imageRow) : []),
      },
      CreateMachine: {
        in: 'sayssusa(sv)',
        out: 'o',
        inNames: ['name', 'id', 'service', 'class', 'leader', 'root_directory', 'scope_properties'],
        outNames: ['path'],
        handler: register('create', false, true),
      },
      CreateMachineWithNetwork: {
        in: 'sayssusaia(sv)',
        out: 'o',
        inNames: [
          'name',
          'id',
          'service',
          'class',
          'leader',
          'root_directory',
          'ifindices',
          'scope_properties',
        ],
        outNames: ['path'],
        handler: register('create', true, true),
      },
      RegisterMachine: {
        in: 'sayssus',
        out: 'o',
        inNames: ['name', 'id', 'service', 'class', 'leader', 'root_directory'],
        outNames: ['path'],
        handler: register('register', false, false),
      },
      RegisterMachineWithNetwork: {
        in: 'sayssusai',
        out: 'o',
        inNames: ['name', 'id', 'service', 'class', 'leader', 'root_directory', 'ifindices'],
        outNames: ['path'],
        handler: register('register', true, false),
      },
      UnregisterMachine: {
        in: 's',
        inNames: ['name'],
        handler: rooted((_, n: string) => c.registry.unregister(machine(n))),
      },
      TerminateMachine: {
        in: 's',
        inNames: ['id'],
        handler: rooted((_, n: string) => c.registry.terminate(machine(n))),
      },
      KillMachine: {
        in: 'ssi',
        inNames: ['name', 'who', 'signal'],
        handler: rooted((_, n: string, who: string, sig: number) => c.registry.kill(machine(n), who, sig)),
      },
      GetMachineAddresses: {
        in: 's',
        out: 'a(iay)',
        inNames: ['name'],
        outNames: ['addresses'],
        handler: (_, n: string) => ops.getAddresses(machine(n)),
      },
      GetMachineOSRelease: {
        in: 's',
        out: 'a{ss}',
        inNames: ['name'],
        outNames: ['fields'],
        handler: (_, n: string) => ops.getOsRelease(machine(n)),
      },
      OpenMachinePTY: {
        in: 's',
        out: 'hs',
        inNames: ['name'],
        outNames: ['pty', 'pty_path'],
        handler: rooted((ctx, n: string) => ops.openPty(machine(n), ctx)),
      },
      OpenMachineLogin: {
        in: 's',
        out: 'hs',
        inNames: ['name'],
        outNames: ['pty', 'pty_path'],
        handler: rooted((ctx, n: string) => ops.openLogin(machine(n), ctx)),
      },
      OpenMachineShell: {
        in: 'sssasas',
        out: 'hs',
        inNames: ['name', 'user', 'path', 'args', 'environment'],
        outNames: ['pty', 'pty_path'],
        handler: rooted((ctx, n: string, user: string, path: string, args: string[], env: string[]) =>
          ops.openShell(machine(n), ctx, user, path, args, env),
        ),
      },
      BindMountMachine: {
        in: 'sssbb',
        inNames: ['name', 'source', 'destination', 'read_only', 'mkdir'],
        handler: rooted((_, n: string, src: string, dst: string, ro: boolean, mk: boolean) =>
          ops.bindMount(machine(n), src, dst, ro, mk),
        ),
      },
      CopyFromMachine: {
        in: 'sss',
        inNames: ['name', 'source', 'destination'],
        handler: rooted((_, n: string, s: string, d: string) => ops.copy(machine(n), 'from', s, d, 0n)),
      },
      CopyToMachine: {
        in: 'sss',
        inNames: ['name', 'source', 'destination'],
        handler: rooted((_, n: string, s: string, d: string) => ops.copy(machine(n), 'to', s, d, 0n)),
      },
      CopyFromMachineWithFlags: {
        in: 'ssst',
        inNames: ['name', 'source', 'destination', 'flags'],
        handler: rooted((_, n: string, s: string, d: string, f: bigint) =>
          ops.copy(machine(n), 'from', s, d, BigInt(f)),
        ),
      },
      CopyToMachineWithFlags: {
        in: 'ssst',
        inNames: ['name', 'source', 'destination', 'flags'],
        handler: rooted((_, n: string, s: string, d: string, f: bigint) =>
          ops.copy(machine(n), 'to', s, d, BigInt(f)),
        ),
      },
      OpenMachineRootDirectory: {
        in: 's',
        out: 'h',
        inNames: ['name'],
        outNames: ['fd'],
        handler: rooted((ctx, n: string) => ops.openRootDirectory(machine(n), ctx)),
      },
      GetMachineUIDShift: {
        in: 's',
        out: 'u',
        inNames: ['name'],
        outNames: ['shift'],
        handler: (_, n: string) => ops.getUidShift(machine(n)),
      },
      RemoveImage: { in: 's', inNames: ['name'], handler: rooted((_, n: string) => img.remove(n)) },
      RenameImage: {
        in: 'ss',
        inNames: ['name', 'new_name'],
        handler: rooted((_, n: string, to: string) => img.rename(n, to)),
      },
      CloneImage: {
        in: 'ssb',
        inNames: ['name', 'new_name', 'read_only'],
        handler: rooted((_, n: string, to: string, ro: boolean) => img.clone(n, to, ro)),
      },
      MarkImageReadOnly: {
        in: 'sb',
        inNames: ['name', 'read_only'],
        handler: rooted((_, n: string, ro: boolean) => img.markReadOnly(n, ro)),
      },
      GetImageHostname: {
        in: 's',
        out: 's',
        inNames: ['name'],
        outNames: ['hostname'],
        handler: (_, n: string) => img.hostname(n),
      },
      GetImageMachineID: {
        in: 's',
        out: 'ay',
        inNames: ['name'],
        outNames: ['id'],
        handler: (_, n: string) => img.machineId(n),
      },
      GetImageMachineInfo: {
        in: 's',
        out: 'a{ss}',
        inNames: ['name'],
        outNames: ['machine_info'],
        handler: (_, n: string) => img.machineInfo(n),
      },
      GetImageOSRelease: {
        in: 's',
        out: 'a{ss}',
        inNames: ['name'],
        outNames: ['os_release'],
        handler: (_, n: string) => img.osRelease(n),
      },
      SetPoolLimit: {
        in: 't',
        inNames: ['size'],
        handler: rooted((_, bytes: bigint) => requirePool(c.pool).setPoolLimit(BigInt(bytes))),
      },
      SetImageLimit: {
        in: 'st',
        inNames: ['name', 'size'],
        handler: rooted((_, n: string, bytes: bigint) => img.setLimit(n, bytes)),
      },
      CleanPool: {
        in: 's',
        out: 'a(st)',
        inNames: ['mode'],
        outNames: ['images'],
        handler: rooted(async (_, mode: string) => {
          if (mode !== 'all' && mode !== 'hidden')
            throw new BusError('org.freedesktop.DBus.Error.InvalidArgs', `Unknown mode '${mode}'.`);
          return (await imageCall(mode, () => requirePool(c.pool).clean(mode))).map((r) => [r.name, r.usage]);
        }),
      },
      MapFromMachineUser: {
        in: 'su',
        out: 'u',
        inNames: ['name', 'uid_inner'],
        outNames: ['uid_outer'],
        handler: (_, n: string, id: number) => ops.mapFromMachine(machine(n), 'uid', id),
      },
      MapToMachineUser: {
        in: 'u',
        out: 'sou',
        inNames: ['uid_outer'],
        outNames: ['machine_name', 'machine_path', 'uid_inner'],
        handler: (_, id: number) => {
          const [m, inner] = ops.mapToMachine(c.registry.list(), 'uid', id);
          return [m.name, machineObjectPath(m.name), inner];
        },
      },
      MapFromMachineGroup: {
        in: 'su',
        out: 'u',
        inNames: ['name', 'gid_inner'],
        outNames: ['gid_outer'],
        handler: (_, n: string, id: number) => ops.mapFromMachine(machine(n), 'gid', id),
      },
      MapToMachineGroup: {
        in: 'u',
        out: 'sou',
        inNames: ['gid_outer'],
        outNames: ['machine_name', 'machine_path', 'gid_inner'],
        handler: (_, id: number) => {
          const [m, inner] = ops.mapToMachine(c.registry.list(), 'gid', id);
          return [m.name, machineObjectPath(m.name), inner];
        },
      },
    },
    signals: {
      MachineNew: { type: 'so', names: ['machine', 'path'] },
      MachineRemoved: { type: 'so', names: ['machine', 'path'] },
    },
    properties: {
      PoolPath: { type: 's', get: () => c.pool?.poolPath ?? c.poolPath, emitsChanged: 'false' },
      PoolUsage: {
        type: 't',
        get: async () => (c.pool ? await c.pool.poolUsage() : UINT64_MAX),
        emitsChanged: 'false',
      },
      PoolLimit: {
        type: 't',
        get: async () => (c.pool ? await c.pool.poolLimit() : UINT64_MAX),
        emitsChanged: 'false',
      },
    },
  };
}
