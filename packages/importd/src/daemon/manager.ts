import { closeSync } from 'node:fs';
import { assertImageName, BusError, type CallContext, DBUS_ERROR, type InterfaceSpec } from '@sd/machined';
import { InvalidArgumentError } from '@sd/sys';
import type { Compression } from '../compress/index.js';
import { parseUrl } from '../pull/http.js';
import { imageNameFromUrl } from '../pull/pull.js';
import { parseExportFormat, parseVerify, type TransferType } from '../types.js';
import type { Importd } from './importd.js';
import { invalidArgs, requireRoot } from './importd.js';

/**
 * org.freedesktop.import1.Manager: the v219 methods and v256's …Ex ones
 * (class and flags: bit 0 force, bit 1 read-only, bit 2 keep-download),
 * ListTransfers(Ex), CancelTransfer, and the two signals.
 */

const FLAG_FORCE = 1n;
const FLAG_READ_ONLY = 2n;
const FLAG_KEEP_DOWNLOAD = 4n;

function flagsOf(flags: bigint): { force: boolean; readOnly: boolean; keepDownload: boolean } {
  if ((flags & ~(FLAG_FORCE | FLAG_READ_ONLY | FLAG_KEEP_DOWNLOAD)) !== 0n)
    throw new BusError(DBUS_ERROR.InvalidArgs, `Unknown flags 0x${flags.toString(16)}`);
  return {
    force: (flags & FLAG_FORCE) !== 0n,
    readOnly: (flags & FLAG_READ_ONLY) !== 0n,
    keepDownload: (flags & FLAG_KEEP_DOWNLOAD) !== 0n,
  };
}

function machineClass(c: string): void {
  if (c !== 'machine')
    throw new BusError(DBUS_ERROR.NotSupported, `Image class '${c}' is not supported (only 'machine')`);
}

export function managerInterface(d: Importd): InterfaceSpec {
  /** Checks done before a transfer starts; the passed fd is closed when they fail. */
  const start = async (
    ctx: CallContext,
    type: TransferType,
    fd: number | undefined,
    remote: string,
    local: string,
    rest: {
      force?: boolean;
      readOnly?: boolean;
      keepDownload?: boolean;
      format?: Compression;
      verify?: string;
    },
  ): Promise<[number, string]> => {
    try {
      await requireRoot(ctx);
      try {
        assertImageName(local, 'Local image name');
      } catch (e) {
        throw invalidArgs(e);
      }
      if (!type.startsWith('export')) {
        const existing = await d.pool.get(local);
        if (existing && !rest.force)
          throw new BusError(DBUS_ERROR.FileExists, `Image '${local}' already exists at ${existing.path}`);
      } else if (!(await d.pool.get(local))) {
        throw new BusError('org.freedesktop.machine1.NoSuchImage', `No image '${local}'`);
      }
      const verify = rest.verify === undefined ? undefined : parseVerify(rest.verify);
      return d.begin(
        type,
        remote,
        local,
        {
          fd,
          force: rest.force,
          readOnly: rest.readOnly,
          // Only pulls download anything to keep (systemd ignores the flag elsewhere too).
          keepDownload: type.startsWith('pull') ? rest.keepDownload : undefined,
          format: rest.format,
          verify,
        },
        verify ?? '',
      );
    } catch (e) {
      if (fd !== undefined) {
        try {
          closeSync(fd);
        } catch {}
      }
      throw invalidArgs(e);
    }
  };
  const importer = (type: TransferType) => ({
    in: 'hsbb',
    out: 'uo',
    inNames: ['fd', 'local_name', 'force', 'read_only'],
    outNames: ['transfer_id', 'transfer_path'],
    handler: (ctx: CallContext, fd: number, local: string, force: boolean, readOnly: boolean) =>
      start(ctx, type, fd, `fd:${fd}`, local, { force, readOnly }),
  });
  const importerEx = (type: TransferType) => ({
    in: 'hsst',
    out: 'uo',
    inNames: ['fd', 'local_name', 'class', 'flags'],
    outNames: ['transfer_id', 'transfer_path'],
    handler: (ctx: CallContext, fd: number, local: string, cls: string, flags: bigint) => {
      try {
        machineClass(cls);
        return start(ctx, type, fd, `fd:${fd}`, local, flagsOf(BigInt(flags)));
      } catch (e) {
        closeSync(fd);
        throw e;
      }
    },
  });
  const format = (f: string): Compression => {
    try {
      return parseExportFormat(f);
    } catch (e) {
      throw invalidArgs(e);
    }
  };
  const exporter = (type: TransferType) => ({
    in: 'shs',
    out: 'uo',
    inNames: ['local_name', 'fd', 'format'],
    outNames: ['transfer_id', 'transfer_path'],
    handler: (ctx: CallContext, local: string, fd: number, f: string) =>
      start(ctx, type, fd, `fd:${fd}`, local, { format: format(f) }),
  });
  const exporterEx = (type: TransferType) => ({
    in: 'sshst',
    out: 'uo',
    inNames: ['local_name', 'class', 'fd', 'format', 'flags'],
    outNames: ['transfer_id', 'transfer_path'],
    handler: (ctx: CallContext, local: string, cls: string, fd: number, f: string, flags: bigint) => {
      try {
        machineClass(cls);
        flagsOf(BigInt(flags));
        return start(ctx, type, fd, `fd:${fd}`, local, { format: format(f) });
      } catch (e) {
        closeSync(fd);
        throw e;
      }
    },
  });
  const pullUrl = (url: string, local: string): string => {
    try {
      parseUrl(url);
      return local === '' ? imageNameFromUrl(url) : local;
    } catch (e) {
      if (e instanceof InvalidArgumentError) throw new BusError(DBUS_ERROR.InvalidArgs, e.message);
      throw e;
    }
  };
  const puller = (type: TransferType) => ({
    in: 'sssb',
    out: 'uo',
    inNames: ['url', 'local_name', 'verify_mode', 'force'],
    outNames: ['transfer_id', 'transfer_path'],
    handler: (ctx: CallContext, url: string, local: string, verify: string, force: boolean) =>
      start(ctx, type, undefined, url, pullUrl(url, local), { force, verify }),
  });
  const pullerEx = (type: TransferType) => ({
    in: 'sssst',
    out: 'uo',
    inNames: ['url', 'local_name', 'class', 'verify_mode', 'flags'],
    outNames: ['transfer_id', 'transfer_path'],
    handler: (ctx: CallContext, url: string, local: string, cls: string, verify: string, flags: bigint) => {
      machineClass(cls);
      return start(ctx, type, undefined, url, pullUrl(url, local), { ...flagsOf(BigInt(flags)), verify });
    },
  });
  const list = () => [...d.transfers.values()].sort((a, b) => a.id - b.id);
  return {
    name: 'org.freedesktop.import1.Manager',
    methods: {
      ImportTar: importer('import-tar'),
      ImportTarEx: importerEx('import-tar'),
      ImportRaw: importer('import-raw'),
      ImportRawEx: importerEx('import-raw'),
      ImportFileSystem: importer('import-fs'),
      ImportFileSystemEx: importerEx('import-fs'),
      ExportTar: exporter('export-tar'),
      ExportTarEx: exporterEx('export-tar'),
      ExportRaw: exporter('export-raw'),
      ExportRawEx: exporterEx('export-raw'),
      PullTar: puller('pull-tar'),
      PullTarEx: pullerEx('pull-tar'),
      PullRaw: puller('pull-raw'),
      PullRawEx: pullerEx('pull-raw'),
      ListTransfers: {
        out: 'a(usssdo)',
        outNames: ['transfers'],
        handler: () => list().map((t) => [t.id, t.type, t.remote, t.local, t.progress, t.path]),
      },
      ListTransfersEx: {
        in: 'st',
        out: 'a(ussssdo)',
        inNames: ['class', 'flags'],
        outNames: ['transfers'],
        handler: (_ctx: CallContext, cls: string) =>
          list()
            .filter((t) => cls === '' || t.imageClass === cls)
            .map((t) => [t.id, t.type, t.remote, t.local, t.imageClass, t.progress, t.path]),
      },
      CancelTransfer: {
        in: 'u',
        inNames: ['transfer_id'],
        handler: async (ctx: CallContext, id: number) => {
          await requireRoot(ctx);
          d.cancel(id);
        },
      },
    },
    signals: {
      TransferNew: { type: 'uo', names: ['transfer_id', 'transfer_path'] },
      TransferRemoved: { type: 'uos', names: ['transfer_id', 'transfer_path', 'result'] },
    },
  };
}
