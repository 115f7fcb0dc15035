import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { SdError } from '@sd/sys';
import { connectBus, systemBusAddress } from '../bus/connect.js';
import { dbus, type MessageBus } from '../bus/dbus.js';
import { BusService } from '../bus/service.js';
import { imageObjectPath, MACHINE1_PATH, nameFromObjectPath } from '../bus-label.js';
import { imagePoolPathsFrom } from '../images/paths.js';
import { ImagePool as PoolLibrary } from '../images/pool.js';
import type { ImagePool } from '../images/types.js';
import { defaultPaths, type MachinedPaths } from '../paths.js';
import { Machine } from '../registry/machine.js';
import { Registry } from '../registry/registry.js';
import type { ScopeBackend } from '../registry/scope.js';
import { imageInterface } from './image-object.js';
import { machineInterface } from './machine-object.js';
import { MANAGER_INTERFACE, managerInterface } from './manager-object.js';
import { cancelOperations, workers } from './operations.js';
import { MachineRunner, runnerInterface } from './runner.js';

export const MACHINE1_BUS_NAME = 'org.freedesktop.machine1';

export interface MachinedOptions {
  paths?: MachinedPaths;
  /** Bus address; the system bus ($DBUS_SYSTEM_BUS_ADDRESS) by default. */
  busAddress?: string;
  /**
   * The image pool; by default the pool library of this package on `paths`
   * (with `root` for its settings directories and the `.host` image). null:
   * none, and the image methods answer NotSupported.
   */
  pool?: ImagePool | null;
  /** The root `paths` were made for (defaultPaths(root)); '/' by default. */
  root?: string;
  /** How CreateMachine makes scopes (cgroupfs by default). */
  scopes?: ScopeBackend;
  /** Terminate's grace period before SIGKILL (90 s, as systemd's default stop timeout). */
  terminateTimeoutMs?: number;
  /** The sd-nspawn that `machinectl start` runs (a path, or a name in $PATH). */
  nspawn?: string;
}

export interface MachinedEvents {
  machineNew: [machine: Machine];
  machineRemoved: [machine: Machine];
  /** Something to log: a failed cleanup, a handler that failed unexpectedly. */
  warning: [message: string, error?: unknown];
  /** The bus connection is gone: the daemon cannot serve any more. */
  disconnected: [error?: unknown];
}

function hostMachine(): Machine {
  let id = Buffer.alloc(16);
  try {
    const text = readFileSync('/etc/machine-id', 'utf8').trim();
    if (/^[0-9a-f]{32}$/.test(text)) id = Buffer.from(text, 'hex');
  } catch {}
  const m = new Machine({
    name: '.host',
    id,
    service: '',
    class: 'host',
    leader: 1,
    leaderStartTime: undefined,
    rootDirectory: '/',
    netif: [],
    timestamp: 0n,
    timestampMonotonic: 0n,
    cgroup: undefined,
    scopeOwned: false,
  });
  m.state = 'running';
  return m;
}

/**
 * sd-machined: owns org.freedesktop.machine1 and serves the Manager, the
 * Machine objects and the Image objects of systemd's machined on it.
 */
export class Machined extends EventEmitter<MachinedEvents> {
  readonly registry: Registry;
  readonly bus: MessageBus;
  readonly service: BusService;
  readonly paths: MachinedPaths;
  readonly host = hostMachine();
  #stopped = false;
  #runner: MachineRunner;

  private constructor(registry: Registry, bus: MessageBus, paths: MachinedPaths, runner: MachineRunner) {
    super();
    this.#runner = runner;
    this.registry = registry;
    this.bus = bus;
    this.paths = paths;
    this.service = new BusService(bus);
  }

  static async start(opts: MachinedOptions = {}): Promise<Machined> {
    const paths = opts.paths ?? defaultPaths();
    const registry = new Registry({
      stateDir: paths.machinesStateDir,
      ...(opts.scopes ? { scopes: opts.scopes } : {}),
      ...(opts.terminateTimeoutMs !== undefined ? { terminateTimeoutMs: opts.terminateTimeoutMs } : {}),
    });
    await registry.load();
    let bus: MessageBus;
    const address = opts.busAddress ?? systemBusAddress();
    try {
      bus = await connectBus(address);
    } catch (e) {
      registry.close();
      throw e;
    }
    // Machines we start register with us: on the bus we serve.
    const runner = new MachineRunner({
      nspawn: opts.nspawn,
      env: { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: address },
    });
    const d = new Machined(registry, bus, paths, runner);
    try {
      // The bus daemon may not lead a machine (Terminate would signal its cgroup).
      registry.forbidden.busPid = await d.#pidOf('org.freedesktop.DBus').catch(() => undefined);
      const pool =
        opts.pool === null
          ? undefined
          : (opts.pool ??
            new PoolLibrary({
              paths: imagePoolPathsFrom(paths, opts.root ?? '/'),
              isInUse: (name) => registry.get(name) !== undefined,
              // Removal, clones and quota run in worker processes: the loop keeps answering.
              offload: (method, args) =>
                workers.start({
                  op: 'pool',
                  paths: imagePoolPathsFrom(paths, opts.root ?? '/'),
                  method,
                  args,
                }).result,
            }));
      d.#setup(pool);
      const reply = await bus.requestName(MACHINE1_BUS_NAME, dbus.NameFlag.DO_NOT_QUEUE);
      if (reply !== dbus.RequestNameReply.PRIMARY_OWNER)
        throw new SdError('EEXIST', `Cannot own ${MACHINE1_BUS_NAME}: another daemon has it`);
    } catch (e) {
      await d.stop();
      throw e;
    }
    return d;
  }

  #setup(pool: ImagePool | undefined): void {
    const { registry, service } = this;
    const lookup = (name: string) => (name === '.host' ? this.host : registry.get(name));
    service.onUnexpectedError = (e, member) => this.emit('warning', `${member} failed`, e);
    service.addObject(MACHINE1_PATH, [
      managerInterface({
        registry,
        lookup,
        all: () => [this.host, ...registry.list()],
        pool,
        poolPath: this.paths.poolDir,
        pidOf: (sender) => this.#pidOf(sender),
      }),
      runnerInterface(this.#runner, () => pool),
    ]);
    service.addSource({
      lookup: (path) => {
        const name = nameFromObjectPath(path, `${MACHINE1_PATH}/machine`);
        const m = name === undefined ? undefined : lookup(name);
        return m ? [machineInterface(m, registry)] : undefined;
      },
      paths: () => [this.host, ...registry.list()].map((m) => m.objectPath),
    });
    let imagePaths: string[] = [];
    service.addSource({
      lookup: (path) => {
        const name = nameFromObjectPath(path, `${MACHINE1_PATH}/image`);
        return name === undefined ? undefined : [imageInterface(name, pool)];
      },
      paths: () => {
        // Children for introspection from the last listing; refreshed in the background.
        pool
          ?.list()
          .then((l) => {
            imagePaths = l.map((i) => imageObjectPath(i.name));
          })
          .catch(() => undefined);
        return imagePaths;
      },
    });
    registry.on('machineNew', (m) => {
      service.emitSignal(MACHINE1_PATH, MANAGER_INTERFACE, 'MachineNew', 'so', [m.name, m.objectPath]);
      this.emit('machineNew', m);
    });
    registry.on('machineClosing', (m) => cancelOperations(m, `Machine '${m.name}' is terminating`));
    registry.on('machineRemoved', (m) => {
      cancelOperations(m, `Machine '${m.name}' is gone`);
      service.emitSignal(MACHINE1_PATH, MANAGER_INTERFACE, 'MachineRemoved', 'so', [m.name, m.objectPath]);
      this.emit('machineRemoved', m);
    });
    registry.on('warning', (msg, e) => this.emit('warning', msg, e));
    this.bus.on('error', (e: unknown) => this.#lost(e));
    (this.bus as unknown as EventEmitter).on('end', () => this.#lost());
    service.start();
  }

  #lost(e?: unknown): void {
    if (this.#stopped) return;
    this.emit('disconnected', e);
  }

  async #pidOf(sender: string): Promise<number> {
    const reply = await this.bus.call(
      new dbus.Message({
        destination: 'org.freedesktop.DBus',
        path: '/org/freedesktop/DBus',
        interface: 'org.freedesktop.DBus',
        member: 'GetConnectionUnixProcessID',
        signature: 's',
        body: [sender],
      }),
    );
    return Number(reply?.body[0]);
  }

  /** Leaves the bus and stops watching; the machines stay in the state files for the next start. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.service.stop();
    this.registry.close();
    try {
      await this.bus.releaseName(MACHINE1_BUS_NAME);
    } catch {}
    this.bus.disconnect();
  }
}
