import { closeSync, fstatSync } from 'node:fs';
import type { ImagePool } from '@sd/machined';
import { SdError } from '@sd/sys';
import type { Compression } from '../compress/index.js';
import { fdSize, fdSource, writeStream } from '../io.js';
import { pullRaw, pullTar } from '../pull/pull.js';
import { exportRaw, exportTar, importFs, importRaw, importTar } from '../transfers.js';
import type { ImportVerify } from '../types.js';
import { LOG, type Transfer } from './transfer.js';

/**
 * What each transfer type does, given its bus arguments: the library calls
 * of ../transfers.ts and ../pull, with progress and log lines fed to the
 * Transfer object. The fd a client passed is ours and closed at the end.
 */

export interface TransferArgs {
  pool: ImagePool;
  fd?: number;
  force?: boolean;
  readOnly?: boolean;
  /** pull-tar/pull-raw: keep the verified download as a hidden read-only copy. */
  keepDownload?: boolean;
  format?: Compression;
  verify?: ImportVerify;
  keyrings?: readonly string[];
}

function progressOf(t: Transfer, total: number | undefined): (bytes: number) => void {
  return (bytes) => {
    if (total) t.setProgress(bytes / total);
  };
}

export async function runTransfer(t: Transfer, a: TransferArgs): Promise<void> {
  const { pool } = a;
  const common = {
    pool,
    force: a.force,
    readOnly: a.readOnly,
    signal: t.signal,
    log: (m: string) => t.log(LOG.INFO, m),
  };
  try {
    switch (t.type) {
      case 'import-tar':
      case 'import-raw': {
        const fd = a.fd!;
        const total = fdSize(fd);
        t.log(LOG.INFO, `Importing '${t.remote}', saving as '${t.local}'.`);
        const fn = t.type === 'import-tar' ? importTar : importRaw;
        const r = await fn(fdSource(fd), t.local, { ...common, onProgress: progressOf(t, total) });
        t.log(
          LOG.INFO,
          `Imported ${r.compression === 'uncompressed' ? 'an uncompressed' : `a ${r.compression}`} image as '${t.local}'.`,
        );
        return;
      }
      case 'import-fs': {
        const fd = a.fd!;
        if (!fstatSync(fd).isDirectory())
          throw new SdError('ENOTDIR', 'The file descriptor is not a directory');
        t.log(LOG.INFO, `Importing '${t.remote}', saving as '${t.local}'.`);
        await importFs(`/proc/self/fd/${fd}`, t.local, common);
        return;
      }
      case 'export-tar':
      case 'export-raw': {
        const fd = a.fd!;
        t.log(LOG.INFO, `Exporting '${t.local}' as ${a.format ?? 'uncompressed'}.`);
        const img = await pool.get(t.local);
        const total = img && img.usage < 2n ** 63n ? Number(img.usage) : undefined;
        const fn = t.type === 'export-tar' ? exportTar : exportRaw;
        const stream = await fn(t.local, {
          pool,
          format: a.format,
          signal: t.signal,
          onProgress: progressOf(t, total),
        });
        await writeStream(fd, stream, t.signal);
        return;
      }
      case 'pull-tar':
      case 'pull-raw': {
        t.log(LOG.INFO, `Pulling '${t.remote}', saving as '${t.local}'.`);
        let total: number | undefined;
        const fn = t.type === 'pull-tar' ? pullTar : pullRaw;
        await fn(t.remote, t.local, {
          ...common,
          verify: a.verify ?? 'signature',
          keyrings: a.keyrings,
          keepDownload: a.keepDownload,
          onSize: (n) => {
            total = n;
          },
          onProgress: (n) => {
            if (total) t.setProgress(n / total);
          },
        });
        return;
      }
    }
  } finally {
    if (a.fd !== undefined) {
      try {
        closeSync(a.fd);
      } catch {}
    }
  }
}
