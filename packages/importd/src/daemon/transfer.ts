import { EventEmitter } from 'node:events';
import { CanceledError } from '../errors.js';
import type { TransferResult, TransferType } from '../types.js';
import { transferObjectPath } from '../types.js';

/**
 * One running transfer as the bus sees it: id, type, remote and local
 * names, verification mode, progress (0..1), log lines, and a cancel that
 * aborts the work between chunks.
 */

export interface TransferInit {
  id: number;
  type: TransferType;
  remote: string;
  local: string;
  verify?: string;
  imageClass?: string;
}

export interface TransferEvents {
  log: [priority: number, line: string];
  progress: [value: number];
}

/** syslog priorities, as LogMessage carries them. */
export const LOG = { ERR: 3, WARNING: 4, NOTICE: 5, INFO: 6 } as const;

export class Transfer extends EventEmitter<TransferEvents> {
  readonly id: number;
  readonly type: TransferType;
  readonly remote: string;
  readonly local: string;
  readonly verify: string;
  readonly imageClass: string;
  readonly path: string;
  readonly controller = new AbortController();
  progress = 0;
  result: TransferResult | undefined;

  constructor(init: TransferInit) {
    super();
    this.id = init.id;
    this.type = init.type;
    this.remote = init.remote;
    this.local = init.local;
    this.verify = init.verify ?? '';
    this.imageClass = init.imageClass ?? 'machine';
    this.path = transferObjectPath(init.id);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  log(priority: number, line: string): void {
    this.emit('log', priority, line);
  }

  setProgress(value: number): void {
    const v = Math.max(0, Math.min(1, value));
    if (v === this.progress) return;
    this.progress = v;
    this.emit('progress', v);
  }

  cancel(): void {
    if (!this.controller.signal.aborted)
      this.controller.abort(new CanceledError(`Transfer ${this.id} canceled`));
  }
}
