import { closeSync, openSync } from 'node:fs';
import { basename } from 'node:path';
import { dbusNext, formatJson } from '@sd/basic';
import { isDigits, SdError } from '@sd/sys';
import { connectBus, systemBusAddress } from '../bus/connect.js';
import type { Message, MessageBus } from '../bus/dbus.js';
import type { JsonMode } from './args.js';
import type { Verb, VerbContext } from './context.js';
import { renderTable } from './format.js';

/**
 * The transfer verbs (pull-tar, pull-raw, import-tar, import-raw,
 * import-fs, export-tar, export-raw, list-transfers, cancel-transfer) as a
 * client of org.freedesktop.import1, like systemd's machinectl/importctl:
 * the file is opened here and its fd passed; LogMessage lines go to
 * stderr; a progress bar with ETA on a terminal; Ctrl-C cancels the
 * transfer; the exit status is 0 only when TransferRemoved says "done".
 * importctl (in @sd/importd) runs the same code.
 */

const IMPORT1 = 'org.freedesktop.import1';
const PATH = '/org/freedesktop/import1';
const MANAGER = 'org.freedesktop.import1.Manager';
const TRANSFER = 'org.freedesktop.import1.Transfer';
const SIGNAL = 4;

export interface TransferOptions {
  force: boolean;
  readOnly: boolean;
  verify: string;
  format: string;
  keepDownload: boolean;
  quiet: boolean;
  noLegend: boolean;
  /** list-transfers as JSON (--json=); off: the table. */
  json?: JsonMode;
}

export interface TransferIo {
  out: (s: string) => void;
  err: (s: string) => void;
  /** Progress bars only when stderr is a terminal. */
  isTTY: boolean;
  stdinFd?: number;
  stdoutFd?: number;
  busAddress?: string;
}

class Import1 {
  readonly bus: MessageBus;
  constructor(bus: MessageBus) {
    this.bus = bus;
  }
  static async connect(address = systemBusAddress()): Promise<Import1> {
    return new Import1(await connectBus(address));
  }
  async call(
    member: string,
    signature: string,
    body: unknown[],
    path = PATH,
    iface = MANAGER,
  ): Promise<unknown[]> {
    try {
      const r = await this.bus.call(
        new (dbusNext().Message)({ destination: IMPORT1, path, interface: iface, member, signature, body }),
      );
      return r?.body ?? [];
    } catch (e) {
      const err = e as { type?: string; text?: string; message?: string };
      throw new SdError(err.type?.split('.').pop() ?? 'EBUS', err.text ?? err.message ?? String(e), {
        cause: e,
      });
    }
  }
  async match(rule: string): Promise<void> {
    await this.bus.call(
      new (dbusNext().Message)({
        destination: 'org.freedesktop.DBus',
        path: '/org/freedesktop/DBus',
        interface: 'org.freedesktop.DBus',
        member: 'AddMatch',
        signature: 's',
        body: [rule],
      }),
    );
  }
  close(): void {
    this.bus.disconnect();
  }
}

/** The image name a file name gives: without directory, .tar/.raw and compression suffixes. */
export function imageNameFromFile(path: string): string {
  return basename(path)
    .replace(/\.(xz|gz|bz2|zst|tgz)$/, '')
    .replace(/\.(tar|raw|qcow2|img)$/, '');
}

/** The export format: --format= or the output file's suffix (as systemd's import_compress_type_from_string). */
export function exportFormat(format: string, file: string | undefined): string {
  if (format !== '') return format;
  if (!file) return 'uncompressed';
  if (/\.xz$/.test(file)) return 'xz';
  if (/\.(gz|tgz)$/.test(file)) return 'gzip';
  if (/\.bz2$/.test(file)) return 'bzip2';
  if (/\.zst$/.test(file)) return 'zstd';
  return 'uncompressed';
}

function bar(progress: number, started: number): string {
  const pct = Math.floor(progress * 100);
  const width = 30;
  const done = Math.round(progress * width);
  const elapsed = (Date.now() - started) / 1000;
  const eta = progress > 0.01 && progress < 1 ? Math.ceil((elapsed / progress) * (1 - progress)) : undefined;
  const rate = elapsed > 0 ? `${((progress * 100) / elapsed).toFixed(1)}%/s` : '';
  return `\r[${'#'.repeat(done)}${' '.repeat(width - done)}] ${String(pct).padStart(3)}% ${rate}${eta === undefined ? '' : ` ETA ${eta}s`}\x1b[K`;
}

/** Runs one transfer method and follows it to TransferRemoved. */
async function follow(
  c: Import1,
  io: TransferIo,
  opts: TransferOptions,
  member: string,
  signature: string,
  body: unknown[],
): Promise<number> {
  await c.match(`type='signal',sender='${IMPORT1}',interface='${MANAGER}',member='TransferRemoved'`);
  await c.match(`type='signal',sender='${IMPORT1}',interface='${TRANSFER}'`);
  const removed = new Map<number, string>();
  let myPath: string | undefined;
  let myId: number | undefined;
  let onDone: ((result: string) => void) | undefined;
  const started = Date.now();
  let drawn = false;
  const handler = (m: Message) => {
    if (m.type !== SIGNAL) return;
    if (m.member === 'TransferRemoved') {
      const [id, , result] = m.body as [number, string, string];
      removed.set(id, result);
      if (id === myId) onDone?.(result);
    } else if (m.path === myPath && m.member === 'LogMessage') {
      if (drawn) io.err('\r\x1b[K');
      if (!opts.quiet) io.err(`${(m.body as [number, string])[1]}\n`);
    } else if (m.path === myPath && m.member === 'ProgressUpdate' && io.isTTY && !opts.quiet) {
      io.err(bar(m.body[0] as number, started));
      drawn = true;
    }
  };
  c.bus.on('message', handler);
  const [id, path] = (await c.call(member, signature, body)) as [number, string];
  myId = id;
  myPath = path;
  const cancel = () => {
    io.err('\nCanceling transfer...\n');
    c.call('CancelTransfer', 'u', [id]).catch(() => undefined);
  };
  process.once('SIGINT', cancel);
  try {
    const result = removed.get(id) ?? (await new Promise<string>((r) => (onDone = r)));
    if (drawn) io.err('\r\x1b[K');
    if (result === 'done') return 0;
    io.err(result === 'canceled' ? 'Transfer canceled.\n' : 'Transfer failed.\n');
    return 1;
  } finally {
    process.off('SIGINT', cancel);
    c.bus.off('message', handler);
  }
}

/** One of the transfer verbs; `args` are the verb's arguments. */
export async function transferVerb(
  verb: string,
  args: string[],
  opts: TransferOptions,
  io: TransferIo,
): Promise<number> {
  const c = await Import1.connect(io.busAddress);
  let fd: number | undefined;
  try {
    const flags = BigInt((opts.force ? 1 : 0) | (opts.readOnly ? 2 : 0) | (opts.keepDownload ? 4 : 0));
    switch (verb) {
      case 'pull-tar':
      case 'pull-raw': {
        const [url, name = ''] = args;
        const member = verb === 'pull-tar' ? 'PullTarEx' : 'PullRawEx';
        return await follow(c, io, opts, member, 'sssst', [url, name, 'machine', opts.verify, flags]);
      }
      case 'import-tar':
      case 'import-raw':
      case 'import-fs': {
        const [file, nameArg] = args;
        const stdin = file === undefined || file === '-';
        if (stdin && verb === 'import-fs') throw new SdError('EINVAL', 'import-fs needs a directory');
        const name = nameArg ?? (stdin ? undefined : imageNameFromFile(file!));
        if (!name) throw new SdError('EINVAL', 'Need either a path or a local name.');
        fd = stdin ? (io.stdinFd ?? 0) : openSync(file!, verb === 'import-fs' ? 'r' : 'r');
        const member =
          verb === 'import-tar'
            ? 'ImportTarEx'
            : verb === 'import-raw'
              ? 'ImportRawEx'
              : 'ImportFileSystemEx';
        return await follow(c, io, opts, member, 'hsst', [fd, name, 'machine', flags & 3n]);
      }
      case 'export-tar':
      case 'export-raw': {
        const [name, file] = args;
        const stdout = file === undefined || file === '-';
        fd = stdout ? (io.stdoutFd ?? 1) : openSync(file!, 'w', 0o666);
        const member = verb === 'export-tar' ? 'ExportTarEx' : 'ExportRawEx';
        const format = exportFormat(opts.format, stdout ? undefined : file);
        return await follow(c, io, opts, member, 'sshst', [name, 'machine', fd, format, 0n]);
      }
      case 'list-transfers': {
        const [list] = (await c.call('ListTransfers', '', [])) as [
          Array<[number, string, string, string, number, string]>,
        ];
        const rows = list.map(([id, type, remote, local, progress]) => [
          String(id),
          progress >= 0 ? `${Math.floor(progress * 100)}%` : 'n/a',
          type,
          local,
          remote,
        ]);
        if (opts.json !== undefined && opts.json !== 'off') {
          const objects = list.map(([id, type, remote, local, progress]) => ({
            id,
            progress,
            type,
            local,
            remote,
          }));
          io.out(formatJson(objects, opts.json));
          return 0;
        }
        const columns = [
          { header: 'ID', right: true },
          { header: 'PERCENT', right: true },
          { header: 'TYPE' },
          { header: 'LOCAL' },
          { header: 'REMOTE' },
        ];
        if (rows.length === 0) {
          if (!opts.noLegend) io.out('No transfers.\n');
          return 0;
        }
        io.out(renderTable(columns, rows, { legend: !opts.noLegend, color: false }));
        if (!opts.noLegend) io.out(`\n${rows.length} transfers listed.\n`);
        return 0;
      }
      case 'cancel-transfer': {
        for (const a of args) {
          if (!isDigits(a)) throw new SdError('EINVAL', `Failed to parse transfer id: ${a}`);
          await c.call('CancelTransfer', 'u', [Number(a)]);
        }
        return 0;
      }
      default:
        throw new SdError('EINVAL', `Unknown transfer verb ${verb}`);
    }
  } finally {
    if (fd !== undefined && fd > 2) closeSync(fd);
    c.close();
  }
}

const optionsOf = (ctx: VerbContext): TransferOptions => ({
  force: ctx.options.force,
  readOnly: ctx.options.readOnly,
  verify: ctx.options.verify ?? '',
  format: ctx.options.format ?? '',
  keepDownload: ctx.options.keepDownload ?? false,
  quiet: ctx.options.quiet,
  noLegend: ctx.options.noLegend,
  json: ctx.options.json,
});

const verb =
  (name: string): Verb =>
  (ctx, args) =>
    transferVerb(name, args, optionsOf(ctx), {
      out: ctx.out,
      err: ctx.err,
      isTTY: process.stderr.isTTY === true,
      stdinFd: ctx.stdinFd,
      stdoutFd: ctx.stdoutFd,
    });

export const pullTar = verb('pull-tar');
export const pullRaw = verb('pull-raw');
export const importTar = verb('import-tar');
export const importRaw = verb('import-raw');
export const importFs = verb('import-fs');
export const exportTar = verb('export-tar');
export const exportRaw = verb('export-raw');
export const listTransfers = verb('list-transfers');
export const cancelTransfer = verb('cancel-transfer');
