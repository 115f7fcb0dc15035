import type { EventEmitter } from 'node:events';
import {
  BusError,
  BusService,
  type CallContext,
  connectBus,
  DBUS_ERROR,
  dbus,
  type ImagePool,
  type ImagePoolPaths,
  type InterfaceSpec,
  imagePoolPaths,
  type MessageBus,
  ImagePool as PoolLibrary,
  systemBusAddress,
} from '@sd/machined';
import { InvalidArgumentError, SdError } from '@sd/sys';
import { CanceledError } from '../errors.js';
import { removeStaleTempImages } from '../pool/target.js';
import { IMPORT1_PATH, type TransferResult, type TransferType } from '../types.js';
import { managerInterface } from './manager.js';
import { runTransfer, type TransferArgs } from './run.js';
import { LOG, Transfer } from './transfer.js';

/**
 * sd-importd: org.freedesktop.import1 on the system bus. Transfers run in
 * this process, one object each under /org/freedesktop/import1/transfer/_N,
 * with Progress, ProgressUpdate and LogMessage; TransferNew and
 * TransferRemoved (with "done", "canceled" or "failed") on the manager.
 * Temporary images left by a killed daemon are removed at start.
 */

export const IMPORT1_BUS_NAME = 'org.freedesktop.import1';
export const MANAGER_INTERFACE = 'org.freedesktop.import1.Manager';
export const TRANSFER_INTERFACE = 'org.freedesktop.import1.Transfer';

export interface ImportdOptions {
  busAddress?: string;
  /** Prefix of the pool paths (tests: a temporary root). */
  root?: string;
  paths?: ImagePoolPaths;
  keyrings?: readonly string[];
  log?: (message: string) => void;
}

export class Importd {
  readonly bus: MessageBus;
  readonly service: BusService;
  readonly pool: ImagePool;
  readonly transfers = new Map<number, Transfer>();
  readonly #keyrings: readonly string[] | undefined;
  readonly #log: (m: string) => void;
  #nextId = 1;
  #stopped = false;

  private constructor(bus: MessageBus, pool: ImagePool, opts: ImportdOptions) {
    this.bus = bus;
    this.pool = pool;
    this.service = new BusService(bus);
    this.#keyrings = opts.keyrings;
    this.#log = opts.log ?? (() => {});
  }

  static async start(opts: ImportdOptions = {}): Promise<Importd> {
    const paths = opts.paths ?? imagePoolPaths(opts.root ?? '/');
    const stale = removeStaleTempImages(paths.poolDir);
    const bus = await connectBus(opts.busAddress ?? systemBusAddress());
    const d = new Importd(bus, new PoolLibrary({ paths }), opts);
    for (const s of stale) d.#log(`Removed ${s}, left by an import that did not finish`);
    try {
      d.#setup();
      const reply = await bus.requestName(IMPORT1_BUS_NAME, dbus.NameFlag.DO_NOT_QUEUE);
      if (reply !== dbus.RequestNameReply.PRIMARY_OWNER)
        throw new SdError('EEXIST', `Cannot own ${IMPORT1_BUS_NAME}: another daemon has it`);
    } catch (e) {
      await d.stop();
      throw e;
    }
    return d;
  }

  #setup(): void {
    const { service } = this;
    service.onUnexpectedError = (e, member) => this.#log(`${member} failed: ${(e as Error).message ?? e}`);
    service.addObject(IMPORT1_PATH, [managerInterface(this)]);
    service.addSource({
      lookup: (path) => {
        const m = /^\/org\/freedesktop\/import1\/transfer\/_(\d+)$/.exec(path);
        const t = m ? this.transfers.get(Number(m[1])) : undefined;
        return t ? [transferInterface(t)] : undefined;
      },
      paths: () => [...this.transfers.values()].map((t) => t.path),
    });
    (this.bus as unknown as EventEmitter).on('error', (e: unknown) => this.#log(`bus error: ${String(e)}`));
    service.start();
  }

  /** Starts a transfer; replies (id, path) at once, the work runs after. */
  begin(
    type: TransferType,
    remote: string,
    local: string,
    args: Omit<TransferArgs, 'pool' | 'keyrings'>,
    verify = '',
  ): [number, string] {
    if (this.#stopped) throw new SdError('ESHUTDOWN', 'sd-importd is stopping');
    const writes = (x: TransferType) => !x.startsWith('export');
    if (writes(type) && [...this.transfers.values()].some((t) => writes(t.type) && t.local === local))
      throw new BusError(DBUS_ERROR.Failed, `A transfer for '${local}' is already running`);
    const t = new Transfer({ id: this.#nextId++, type, remote, local, verify });
    this.transfers.set(t.id, t);
    const path = t.path;
    t.on('log', (prio, line) => {
      this.service.emitSignal(path, TRANSFER_INTERFACE, 'LogMessage', 'us', [prio, line]);
      this.#log(`[${t.id}] ${line}`);
    });
    let last = 0;
    t.on('progress', (v) => {
      const now = Date.now();
      if (now - last < 250 && v < 1) return;
      last = now;
      this.service.emitSignal(path, TRANSFER_INTERFACE, 'ProgressUpdate', 'd', [v]);
    });
    this.service.emitSignal(IMPORT1_PATH, MANAGER_INTERFACE, 'TransferNew', 'uo', [t.id, path]);
    setImmediate(() => void this.#run(t, { ...args, pool: this.pool, keyrings: this.#keyrings }));
    return [t.id, path];
  }

  async #run(t: Transfer, args: TransferArgs): Promise<void> {
    let result: TransferResult = 'done';
    try {
      await runTransfer(t, args);
      t.setProgress(1);
      t.log(LOG.INFO, 'Operation completed successfully.');
    } catch (e) {
      result = t.signal.aborted || e instanceof CanceledError ? 'canceled' : 'failed';
      t.log(
        LOG.ERR,
        result === 'canceled' ? 'Transfer canceled.' : `Transfer failed: ${(e as Error).message ?? e}`,
      );
    }
    t.result = result;
    this.transfers.delete(t.id);
    this.service.emitSignal(IMPORT1_PATH, MANAGER_INTERFACE, 'TransferRemoved', 'uos', [
      t.id,
      t.path,
      result,
    ]);
  }

  cancel(id: number): void {
    const t = this.transfers.get(id);
    if (!t) throw new BusError('org.freedesktop.import1.NoSuchTransfer', `No transfer by id ${id}`);
    t.cancel();
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const t of this.transfers.values()) t.cancel();
    // Give running transfers a moment to remove their temporary images.
    for (let i = 0; i < 100 && this.transfers.size > 0; i++) await new Promise((r) => setTimeout(r, 20));
    this.service.stop();
    try {
      await this.bus.releaseName(IMPORT1_BUS_NAME);
    } catch {}
    this.bus.disconnect();
  }
}

function transferInterface(t: Transfer): InterfaceSpec {
  return {
    name: TRANSFER_INTERFACE,
    methods: {
      Cancel: {
        handler: async (ctx: CallContext) => {
          await requireRoot(ctx);
          t.cancel();
        },
      },
    },
    properties: {
      Id: { type: 'u', get: () => t.id, emitsChanged: 'const' },
      Local: { type: 's', get: () => t.local, emitsChanged: 'const' },
      Remote: { type: 's', get: () => t.remote, emitsChanged: 'const' },
      Type: { type: 's', get: () => t.type, emitsChanged: 'const' },
      Verify: { type: 's', get: () => t.verify, emitsChanged: 'const' },
      Class: { type: 's', get: () => t.imageClass, emitsChanged: 'const' },
      Progress: { type: 'd', get: () => t.progress, emitsChanged: 'false' },
    },
    signals: {
      LogMessage: { type: 'us', names: ['priority', 'line'] },
      ProgressUpdate: { type: 'd', names: ['progress'] },
    },
  };
}

/** Mutating calls are root's (systemd asks polkit; without it, denied). */
export async function requireRoot(ctx: CallContext): Promise<void> {
  if ((await ctx.senderUid()) !== 0) throw new BusError(DBUS_ERROR.AccessDenied, 'Access denied');
}

export function invalidArgs(e: unknown): unknown {
  if (e instanceof InvalidArgumentError) return new BusError(DBUS_ERROR.InvalidArgs, e.message);
  return e;
}
