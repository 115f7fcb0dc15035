import { SdError, withNetworkNamespace } from '@sd/sys';
import koffi from 'koffi';

/**
 * libnftables through koffi: nftables commands in nft's own text syntax,
 * with output (when asked) as JSON. Text for the commands because every
 * value we put in them is generated and validated by us (addresses,
 * numbers, protocol keywords), so they read like `nft -f` files and an
 * error message points at the exact word; JSON for what we read back,
 * because it is the stable machine interface of `list`. A context is bound
 * to the network namespace it was made in (its netlink socket is).
 */

export class NftError extends SdError {
  constructor(
    message: string,
    readonly commands: string,
  ) {
    super('ENFTABLES', message);
  }
}

interface Lib {
  ctxNew: (flags: number) => unknown;
  ctxFree: (ctx: unknown) => void;
  bufferOutput: (ctx: unknown) => number;
  bufferError: (ctx: unknown) => number;
  getOutput: (ctx: unknown) => string;
  getError: (ctx: unknown) => string;
  setOutputFlags: (ctx: unknown, flags: number) => void;
  run: (ctx: unknown, buf: string) => number;
}

let lib: Lib | undefined;

function load(): Lib {
  if (lib) return lib;
  let so: ReturnType<typeof koffi.load>;
  try {
    so = koffi.load('libnftables.so.1');
  } catch (e) {
    throw new SdError(
      'ENOPKG',
      'libnftables.so.1 is not installed (Debian: libnftables1); it is needed for masquerading and port forwarding',
      { cause: e },
    );
  }
  const ctx = koffi.opaque('nft_ctx');
  const p = koffi.pointer(ctx);
  lib = {
    ctxNew: so.func('nft_ctx_new', p, ['uint32_t']),
    ctxFree: so.func('nft_ctx_free', 'void', [p]),
    bufferOutput: so.func('nft_ctx_buffer_output', 'int', [p]),
    bufferError: so.func('nft_ctx_buffer_error', 'int', [p]),
    getOutput: so.func('nft_ctx_get_output_buffer', 'const char *', [p]),
    getError: so.func('nft_ctx_get_error_buffer', 'const char *', [p]),
    setOutputFlags: so.func('nft_ctx_output_set_flags', 'void', [p, 'unsigned int']),
    run: so.func('nft_run_cmd_from_buffer', 'int', [p, 'const char *']),
  };
  return lib;
}

const NFT_CTX_OUTPUT_JSON = 1 << 4;

export class Nft {
  private ctx: unknown;
  private readonly l: Lib;
  private readonly json: boolean;

  /** A context in our network namespace, or in the one of `netnsFd`. */
  constructor(options: { netnsFd?: number; json?: boolean } = {}) {
    this.l = load();
    const make = () => this.l.ctxNew(0);
    this.ctx = options.netnsFd === undefined ? make() : withNetworkNamespace(options.netnsFd, make);
    if (!this.ctx) throw new SdError('ENOMEM', 'nft_ctx_new failed');
    this.l.bufferOutput(this.ctx);
    this.l.bufferError(this.ctx);
    this.json = options.json ?? false;
  }

  /** Runs commands (one per line, as in an nft file), atomically; returns what they printed (as JSON with `json`). */
  run(commands: string, options: { json?: boolean } = {}): string {
    if (!this.ctx) throw new SdError('EBADF', 'nft context is closed');
    this.l.setOutputFlags(this.ctx, (options.json ?? this.json) ? NFT_CTX_OUTPUT_JSON : 0);
    const r = this.l.run(this.ctx, commands);
    const out = this.l.getOutput(this.ctx) ?? '';
    if (r !== 0) {
      const err = (this.l.getError(this.ctx) ?? '').trim();
      throw new NftError(`nftables: ${err || 'command failed'}`, commands);
    }
    return out;
  }

  close(): void {
    if (this.ctx) this.l.ctxFree(this.ctx);
    this.ctx = undefined;
  }
}
