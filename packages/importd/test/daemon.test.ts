import { spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { connectBus, dbus, ImagePool, imagePoolPaths, type MessageBus } from '@sd/machined';
import { pipe } from '@sd/sys';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PrivateBus, startPrivateBus } from '../../../tools/dbus/private-bus.js';
import { exportTar } from '../src/index.js';
import { archive } from './archive.js';
import { type ImportdProc, startImportd } from './importd-proc.js';
import { makeTree, snapshotTree } from './tree.js';

const repo = fileURLToPath(new URL('../../../', import.meta.url));
const IMPORTCTL = join(repo, 'packages/importd/src/importctl.ts');
const MACHINECTL = join(repo, 'packages/machined/src/machinectl.ts');

function cli(entry: string, ...args: string[]) {
  return spawnSync(process.execPath, ['--conditions=sd-source', '--import', 'tsx', entry, ...args], {
    env: privateBus.env,
    encoding: 'utf8',
    timeout: 60_000,
  });
}

/** Debian's machinectl refuses to run unless /run/systemd/system exists: a private mount namespace gives it one. */
function debianMachinectl(...args: string[]) {
  const script =
    'mkdir -p /run/systemd && mount -t tmpfs tmpfs /run/systemd && mkdir /run/systemd/system && exec /usr/bin/machinectl --no-pager "$@"';
  return spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, 'sh', ...args], {
    env: privateBus.env,
    encoding: 'utf8',
    timeout: 60_000,
  });
}
const M = 'org.freedesktop.import1.Manager';

let root: string;
let pool: ImagePool;
let privateBus: PrivateBus;
let client: MessageBus;
let daemon: ImportdProc | undefined;
const signals: Array<{ path: string; member: string; body: unknown[] }> = [];

async function restartImportd(): Promise<void> {
  daemon = await startImportd(root, privateBus.env);
}

async function stopImportd(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  const d = daemon;
  daemon = undefined;
  await d?.stop(signal);
}

async function call(
  member: string,
  signature = '',
  body: unknown[] = [],
  path = '/org/freedesktop/import1',
  iface = M,
) {
  const r = await client.call(
    new dbus.Message({
      destination: 'org.freedesktop.import1',
      path,
      interface: iface,
      member,
      signature,
      body,
    }),
  );
  return r?.body ?? [];
}

async function removed(id: number, ms = 20_000): Promise<string> {
  const end = Date.now() + ms;
  for (;;) {
    const s = signals.find((x) => x.member === 'TransferRemoved' && x.body[0] === id);
    if (s) return s.body[2] as string;
    if (Date.now() > end) throw new Error(`no TransferRemoved for ${id}; daemon log: ${daemon?.log()}`);
    await sleep(20);
  }
}

const temps = () => readdirSync(pool.poolPath).filter((n) => n.startsWith('.#'));

beforeAll(async () => {
  root = mkdtempSync(`${tmpdir()}/imp-daemon-`);
  pool = new ImagePool({ paths: imagePoolPaths(root) });
  mkdirSync(pool.poolPath, { recursive: true });
  makeTree(`${pool.poolPath}/imp-src`);
  privateBus = await startPrivateBus();
  client = await connectBus(privateBus.address);
  await client.call(
    new dbus.Message({
      destination: 'org.freedesktop.DBus',
      path: '/org/freedesktop/DBus',
      interface: 'org.freedesktop.DBus',
      member: 'AddMatch',
      signature: 's',
      body: ["type='signal',sender='org.freedesktop.import1'"],
    }),
  );
  client.on('message', (m) => {
    if (m.type === 4) signals.push({ path: m.path, member: m.member, body: m.body });
  });
  await restartImportd();
}, 60_000);

afterAll(async () => {
  await stopImportd();
  client?.disconnect();
  await privateBus?.stop();
  // The read-only import is immutable: the pool takes that off before removing.
  for (const img of await pool.list())
    if (img.name.startsWith('imp-')) await pool.remove(img.name).catch(() => {});
  rmSync(root, { recursive: true, force: true });
});

describe('sd-importd on a private bus', () => {
  it('imports a tar from a passed fd, with TransferNew, LogMessage and TransferRemoved', async () => {
    const file = `${root}/imp.tar.zst`;
    const parts: Buffer[] = [];
    for await (const c of await exportTar('imp-src', { pool, format: 'zstd' })) parts.push(Buffer.from(c));
    const fd = openSync(file, 'w+');
    writeSync(fd, Buffer.concat(parts));
    closeSync(fd);
    const rfd = openSync(file, 'r');
    const [id, path] = (await call('ImportTar', 'hsbb', [rfd, 'imp-bus', false, false])) as [number, string];
    closeSync(rfd);
    expect(path).toBe(`/org/freedesktop/import1/transfer/_${id}`);
    expect(await removed(id)).toBe('done');
    expect(signals.some((s) => s.member === 'TransferNew' && s.body[0] === id)).toBe(true);
    expect(signals.some((s) => s.member === 'LogMessage' && s.path === path)).toBe(true);
    expect(snapshotTree(`${pool.poolPath}/imp-bus`)).toEqual(snapshotTree(`${pool.poolPath}/imp-src`));
    // An existing name is refused at once, and the fd is not kept.
    const again = openSync(file, 'r');
    await expect(call('ImportTar', 'hsbb', [again, 'imp-bus', false, false])).rejects.toThrow(
      /already exists/,
    );
    closeSync(again);
  });

  it('exports a tar into a passed fd', async () => {
    const out = `${root}/out.tar.xz`;
    const fd = openSync(out, 'w');
    const [id] = (await call('ExportTar', 'shs', ['imp-src', fd, 'xz'])) as [number];
    closeSync(fd);
    expect(await removed(id)).toBe('done');
    expect(
      readFileSync(out)
        .subarray(0, 6)
        .equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0])),
    ).toBe(true);
    const rfd = openSync(out, 'r');
    const [id2] = (await call('ImportTarEx', 'hsst', [rfd, 'imp-bus2', 'machine', 2n])) as [number];
    closeSync(rfd);
    expect(await removed(id2)).toBe('done');
    expect((await pool.get('imp-bus2'))?.readOnly).toBe(true);
  });

  it('rejects bad names, classes and formats with InvalidArgs/NotSupported', async () => {
    const fd = openSync(`${root}/out.tar.xz`, 'r');
    await expect(call('ImportTar', 'hsbb', [fd, '../evil', false, false])).rejects.toThrow(/invalid/i);
    await expect(call('ImportTarEx', 'hsst', [fd, 'imp-x', 'portable', 0n])).rejects.toThrow(/class/);
    closeSync(fd);
    await expect(call('ExportTar', 'shs', ['imp-src', 0, 'lz4'])).rejects.toThrow(/export format/);
    await expect(call('CancelTransfer', 'u', [999])).rejects.toThrow(/No transfer/);
  });

  it('cancel-transfer during an import from a pipe leaves no partial image', async () => {
    const [r, w] = pipe();
    const [id, path] = (await call('ImportTar', 'hsbb', [r, 'imp-cancel', false, false])) as [number, string];
    closeSync(r);
    // Half an archive, then nothing: the import waits for more.
    writeSync(w, archive([{ path: 'big', data: Buffer.alloc(300_000, 1) }]).subarray(0, 100_000));
    await sleep(300);
    const list = (await call('ListTransfers'))[0] as Array<[number, string, string, string, number, string]>;
    const mine = list.find((t) => t[0] === id);
    expect(mine?.[1]).toBe('import-tar');
    expect(mine?.[3]).toBe('imp-cancel');
    expect(mine?.[5]).toBe(path);
    expect(
      (
        await call(
          'Get',
          'ss',
          ['org.freedesktop.import1.Transfer', 'Type'],
          path,
          'org.freedesktop.DBus.Properties',
        )
      )[0],
    ).toMatchObject({ value: 'import-tar' });
    await call('CancelTransfer', 'u', [id]);
    // The cancel is seen between chunks: one more write wakes the reader.
    writeSync(w, Buffer.alloc(512));
    closeSync(w);
    expect(await removed(id)).toBe('canceled');
    expect(await pool.get('imp-cancel')).toBeUndefined();
    expect(temps()).toEqual([]);
  });

  it('a kill -9 during an import leaves no image; the restarted daemon removes the leftover and serves', async () => {
    const [r, w] = pipe();
    const [id] = (await call('ImportTar', 'hsbb', [r, 'imp-killed', false, false])) as [number];
    closeSync(r);
    writeSync(w, archive([{ path: 'big', data: Buffer.alloc(300_000, 1) }]).subarray(0, 100_000));
    for (let i = 0; i < 100 && temps().length === 0; i++) await sleep(20);
    expect(temps().length).toBe(1);
    await stopImportd('SIGKILL');
    closeSync(w);
    expect(await pool.get('imp-killed')).toBeUndefined();
    await restartImportd();
    expect(temps()).toEqual([]);
    expect(signals.some((s) => s.member === 'TransferRemoved' && s.body[0] === id)).toBe(false);
    expect(await call('ListTransfers')).toEqual([[]]);
  });

  it('importctl and our machinectl import, list and export through the daemon', async () => {
    const file = `${root}/imp-cli.tar.gz`;
    const e1 = cli(IMPORTCTL, 'export-tar', 'imp-src', file);
    expect(e1.stderr).toContain('Operation completed successfully');
    expect(e1.status).toBe(0);
    expect(
      readFileSync(file)
        .subarray(0, 2)
        .equals(Buffer.from([0x1f, 0x8b])),
    ).toBe(true);
    const i1 = cli(IMPORTCTL, 'import-tar', file);
    expect(i1.status, i1.stderr).toBe(0);
    expect(snapshotTree(`${pool.poolPath}/imp-cli`)).toEqual(snapshotTree(`${pool.poolPath}/imp-src`));
    const i2 = cli(MACHINECTL, 'import-tar', '--read-only', file, 'imp-mctl');
    expect(i2.status, i2.stderr).toBe(0);
    expect((await pool.get('imp-mctl'))?.readOnly).toBe(true);
    const again = cli(MACHINECTL, 'import-tar', file, 'imp-mctl');
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(/already exists/);
    const l = cli(MACHINECTL, 'list-transfers');
    expect(l.status).toBe(0);
    expect(l.stdout).toContain('No transfers.');
    const c = cli(IMPORTCTL, 'cancel-transfer', '4242');
    expect(c.status).toBe(1);
    expect(c.stderr).toMatch(/No transfer/);
    const bad = cli(IMPORTCTL, 'pull-tar', '--verify=maybe', 'http://127.0.0.1/x.tar');
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/verification mode/);
    // importctl's options (option-audit.test.ts names this test for them).
    const q = cli(IMPORTCTL, '-q', '--force', '--read-only', 'import-tar', file, 'imp-cli');
    expect(q.status, q.stderr).toBe(0);
    expect(q.stderr).not.toContain('Operation completed');
    expect((await pool.get('imp-cli'))?.readOnly).toBe(true);
    const xz = `${root}/imp-cli.tar`;
    const e2 = cli(IMPORTCTL, 'export-tar', '--format=xz', 'imp-src', xz);
    expect(e2.status, e2.stderr).toBe(0);
    expect(readFileSync(xz).subarray(0, 6).toString('latin1')).toBe('\xfd7zXZ\0');
    expect(cli(IMPORTCTL, '--json=short', 'list-transfers').stdout).toBe('[]\n');
    expect(cli(IMPORTCTL, '--no-legend', 'list-transfers').stdout).toBe('');
    expect(cli(MACHINECTL, '--json=short', 'list-transfers').stdout).toBe('[]\n');
    const mbad = cli(MACHINECTL, 'pull-tar', '--verify=maybe', 'http://127.0.0.1/x.tar');
    expect(mbad.status).toBe(1);
    expect(mbad.stderr).toMatch(/verification mode/);
    const gz = `${root}/imp-mctl.tar`;
    expect(cli(MACHINECTL, 'export-tar', '--format=gzip', 'imp-src', gz).status).toBe(0);
    expect(
      readFileSync(gz)
        .subarray(0, 2)
        .equals(Buffer.from([0x1f, 0x8b])),
    ).toBe(true);
    const same = cli(
      IMPORTCTL,
      ...[
        '-m',
        '-N',
        '--class=machine',
        '--system',
        '--keep-download=no',
        '--no-ask-password',
        '--no-pager',
        '-j',
      ],
      'list-transfers',
    );
    expect(same.status, same.stderr).toBe(0);
    expect(same.stdout).toBe('[]\n');
  });

  it.skipIf(!existsSync('/usr/bin/machinectl'))(
    "Debian's machinectl import-tar and export-tar work against sd-importd",
    async () => {
      const file = `${root}/imp-deb.tar.xz`;
      const e = debianMachinectl('export-tar', 'imp-src', file);
      expect(e.status, e.stderr).toBe(0);
      const r = debianMachinectl('import-tar', file, 'imp-debian');
      expect(r.status, r.stderr).toBe(0);
      expect(snapshotTree(`${pool.poolPath}/imp-debian`)).toEqual(snapshotTree(`${pool.poolPath}/imp-src`));
      const l = debianMachinectl('list-transfers');
      expect(l.status, l.stderr).toBe(0);
    },
  );

  it('ImportFileSystem copies a directory passed as an fd; PullTar downloads over loopback HTTP', async () => {
    const dfd = openSync(`${pool.poolPath}/imp-src`, 'r');
    const [id] = (await call('ImportFileSystem', 'hsbb', [dfd, 'imp-fs', false, false])) as [number];
    closeSync(dfd);
    expect(await removed(id)).toBe('done');
    expect(snapshotTree(`${pool.poolPath}/imp-fs`)).toEqual(snapshotTree(`${pool.poolPath}/imp-src`));

    const parts: Buffer[] = [];
    for await (const c of await exportTar('imp-src', { pool, format: 'gzip' })) parts.push(Buffer.from(c));
    const data = Buffer.concat(parts);
    const server = createServer((req, res) => {
      if (req.url === '/imp-web.tar.gz') res.end(data);
      else {
        res.writeHead(404);
        res.end();
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/imp-web.tar.gz`;
      const [pid] = (await call('PullTar', 'sssb', [url, '', 'no', false])) as [number];
      expect(await removed(pid)).toBe('done');
      expect(snapshotTree(`${pool.poolPath}/imp-web`)).toEqual(snapshotTree(`${pool.poolPath}/imp-src`));
      // checksum mode with no SHA256SUMS on the server: refused, nothing in the pool.
      const [bad] = (await call('PullTar', 'sssb', [url, 'imp-web2', 'checksum', false])) as [number];
      expect(await removed(bad)).toBe('failed');
      expect(await pool.get('imp-web2')).toBeUndefined();
      expect(temps()).toEqual([]);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
