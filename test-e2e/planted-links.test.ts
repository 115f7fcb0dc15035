import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  cpSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { makeBusyboxTree, NSPAWN_CLI } from './lib/trees.js';

// A hostile tree against the host: symlinks planted where sd-nspawn reads,
// writes or mounts (/etc, /dev, /run, /usr, resolv.conf, localtime), and
// device nodes and FIFOs where it copies files (issue 9 items 5 and 6,
// issue 11's end-to-end planted-link test). Whatever the tree holds, the
// host's files stay as they were, no host device is opened, nothing hangs.

const MiB = 1024 * 1024;
const SECRET = 'PATHS-SECRET-ON-A-HOST-LOOP-DEVICE';
const VOLATILE = ['no', 'yes', 'state', 'overlay'] as const;
const CONSOLE = ['interactive', 'read-only', 'passive', 'pipe', 'autopipe'] as const;

let work: string;
let canary: string;
let base: ReturnType<typeof makeBusyboxTree>;
let victimFile: string;
let victimLoop: string;
let victimMinor: number;
// A machine name per run: a run that fails (a hang, killed) cannot make the next one fail.
let machines = 0;

/** sd-nspawn with stdin closed; one that hangs is SIGKILLed (a hang blocks in a syscall, deaf to SIGTERM). */
function sdNspawn(args: string[], timeout = 60_000) {
  const r = spawnSync(process.execPath, [NSPAWN_CLI, ...args], {
    encoding: 'utf8',
    timeout,
    killSignal: 'SIGKILL',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Every entry below `dir` with its type, mode, owner, size, mtime and content hash. */
function snapshot(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = lstatSync(p);
      let what = `${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.size} ${st.mtimeMs}`;
      if (st.isFile()) what += ` ${createHash('sha256').update(readFileSync(p)).digest('hex')}`;
      if (st.isSymbolicLink()) what += ` -> ${readlinkSync(p)}`;
      out.push(`${p.slice(canary.length)} ${what}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out;
}

/** A copy of the busybox tree, then `plant` makes it hostile. */
function hostileTree(name: string, plant: (dir: string) => void): string {
  const dir = join(work, name);
  cpSync(base.dir, dir, { recursive: true, verbatimSymlinks: true });
  plant(dir);
  return dir;
}

function replaceWithLink(dir: string, path: string, target: string): void {
  rmSync(join(dir, path), { recursive: true, force: true });
  symlinkSync(target, join(dir, path));
}

function resetVictim(): void {
  writeFileSync(victimFile, Buffer.concat([Buffer.from(SECRET), Buffer.alloc(MiB - SECRET.length)]));
}

function victimUntouched(): void {
  expect(readFileSync(victimFile, 'utf8').startsWith(SECRET)).toBe(true);
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'paths-planted-'));
  canary = join(work, 'canary');
  // The host directory every planted link aims at, with something in each place.
  for (const d of ['', 'etc', 'dev', 'run', 'usr', 'usr/bin', 'var'])
    mkdirSync(join(canary, d), { recursive: true });
  for (const f of [
    'CANARY-MARK',
    'resolv.conf',
    'localtime',
    'etc/CANARY-MARK',
    'etc/resolv.conf',
    'usr/CANARY-MARK',
  ])
    writeFileSync(join(canary, f), 'CANARY\n');
  base = makeBusyboxTree('paths-planted-base-');
  // A shell in the canary's /usr: a container that got the host's canary as /usr would run it.
  cpSync(join(base.dir, 'bin/busybox'), join(canary, 'usr/bin/busybox'));
  symlinkSync('busybox', join(canary, 'usr/bin/sh'));
  victimFile = join(work, 'victim.img');
  resetVictim();
  victimLoop = sh('losetup', ['--find', '--show', victimFile]).trim();
  victimMinor = Number(/loop(\d+)$/.exec(victimLoop)![1]);
}, 60_000);

// Each test starts from the secret: one test's failure must not fail the next.
beforeEach(() => resetVictim());

afterAll(() => {
  base?.remove();
  if (victimLoop) spawnSync('losetup', ['-d', victimLoop]);
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('--volatile=yes with a planted /usr', () => {
  for (const userns of [false, true]) {
    it(`a /usr -> / link names the tree's root, never the host's${userns ? ' (-U)' : ''}`, () => {
      // The tree's own programs stay reachable as /usr/bin/* (usr/ is the tree itself).
      const tree = hostileTree(`usr-root${userns ? '-u' : ''}`, (d) => replaceWithLink(d, 'usr', '/'));
      const r = sdNspawn([
        '-q',
        `--machine=paths-usr${userns ? '-u' : ''}`,
        ...(userns ? ['-U'] : []),
        '--volatile=yes',
        '-D',
        tree,
        '/usr/bin/sh',
        '-c',
        `cat /usr/etc/os-release; cat /usr${canary}/CANARY-MARK 2>&1; echo end`,
      ]);
      expect(r.stdout).not.toContain('CANARY\n');
      expect(r.stdout).toContain('ID=busybox');
      expect(r.code, r.stderr).toBe(0);
    });
  }
});

describe('device nodes and FIFOs where sd-nspawn copies or mounts files', () => {
  const cases = [
    { file: 'etc/resolv.conf', args: [] as string[] },
    { file: 'etc/resolv.conf', args: ['--resolv-conf=replace-host'] },
    { file: 'etc/resolv.conf', args: ['--resolv-conf=bind-host'] },
    { file: 'etc/localtime', args: ['--timezone=copy'] },
    { file: 'etc/localtime', args: ['--timezone=bind'] },
    { file: 'etc/passwd', args: [] as string[] },
  ];
  for (const { file, args } of cases) {
    for (const kind of ['block', 'fifo'] as const) {
      for (const userns of [false, true]) {
        const name = `${kind} at /${file} ${args.join(' ')}${userns ? ' -U' : ''}`;
        it(`${name}: refused or mounted over, never opened; no hang`, () => {
          const tree = hostileTree(`node-${kind}-${file.replace('/', '-')}-${args.length}-${userns}`, (d) => {
            rmSync(join(d, file), { force: true });
            if (kind === 'block') sh('mknod', [join(d, file), 'b', '7', String(victimMinor)]);
            else sh('mkfifo', [join(d, file)]);
            chmodSync(join(d, file), 0o666);
          });
          const started = Date.now();
          const r = sdNspawn(
            [
              '-q',
              `--machine=paths-node-${++machines}`,
              ...(userns ? ['-U'] : []),
              ...args,
              '-D',
              tree,
              'sh',
              '-c',
              'echo ran',
            ],
            20_000,
          );
          expect(r.signal, `sd-nspawn hung: ${r.stderr}`).toBeNull();
          expect(Date.now() - started).toBeLessThan(15_000);
          expect(r.stdout, r.stderr).toContain('ran');
          victimUntouched();
          // The tree's node is still what it was: nothing wrote through it or replaced it.
          const st = lstatSync(join(tree, file));
          expect(kind === 'block' ? st.isBlockDevice() : st.isFIFO()).toBe(true);
        });
      }
    }
  }
});

describe("a FIFO where the host's own resolv.conf, localtime or os-release is read", () => {
  // The host's file, not the tree's: a mount namespace of the test's own binds a FIFO over it
  // (the host's /etc stays as it is). sd-nspawn reads these, and must refuse a FIFO there as it
  // refuses one in the tree: opening it would block for good.

  /** sd-nspawn running `cmd` in `tree`, with a FIFO bound over the host's `hostFile`. */
  function withHostFifo(hostFile: string, args: string[], tree: string, cmd: string[]) {
    const fifo = join(work, `host-fifo-${++machines}.fifo`);
    sh('mkfifo', [fifo]);
    try {
      const started = Date.now();
      const r = spawnSync(
        'unshare',
        [
          ...['-m', '--propagation', 'private', 'sh', '-c', 'mount --bind "$1" "$2" && shift 2 && exec "$@"'],
          ...[
            'sh',
            fifo,
            hostFile,
            process.execPath,
            NSPAWN_CLI,
            '-q',
            `--machine=paths-host-fifo-${machines}`,
          ],
          ...[...args, '-D', tree, ...cmd],
        ],
        { encoding: 'utf8', timeout: 20_000, killSignal: 'SIGKILL', stdio: ['ignore', 'pipe', 'pipe'] },
      );
      expect(r.signal, `sd-nspawn hung: ${r.stderr}`).toBeNull();
      expect(Date.now() - started).toBeLessThan(15_000);
      return r;
    } finally {
      rmSync(fifo, { force: true });
    }
  }

  const copied = [
    { hostFile: '/etc/resolv.conf', treeFile: 'etc/resolv.conf', args: ['--resolv-conf=copy-host'] },
    { hostFile: '/etc/localtime', treeFile: 'etc/localtime', args: ['--timezone=copy'] },
  ];
  for (const { hostFile, treeFile, args } of copied) {
    it(`${hostFile} with ${args.join(' ')}: refused with one line, no hang, the tree's file kept`, () => {
      const tree = hostileTree(`host-fifo-${treeFile.replace('/', '-')}`, () => {});
      const before = snapshot(join(tree, 'etc'));
      const r = withHostFifo(hostFile, args, tree, ['true']);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/^sd-nspawn: '\/[^']*' is a FIFO, not a regular file: refusing to open it\n$/);
      // Nothing of the start is left in the tree: its /etc is as it was.
      expect(snapshot(join(tree, 'etc'))).toEqual(before);
    });
  }

  it('/etc/os-release: not offered as /run/host/os-release; the container runs', () => {
    const tree = hostileTree('host-fifo-os-release', () => {});
    // Debian's /etc/os-release links to /usr/lib/os-release: the bind covers both names.
    const r = withHostFifo('/etc/os-release', ['--console=pipe'], tree, [
      'sh',
      '-c',
      'test -e /run/host/os-release || echo ran',
    ]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe('ran\n');
  });
});

describe('symlinks to a host canary directory', () => {
  const variants: Array<{ name: string; plant: (d: string) => void; runs: boolean }> = [
    {
      // The directories sd-nspawn mounts on or writes into.
      name: 'etc, dev, run, usr -> canary',
      plant: (d) => {
        for (const x of ['etc', 'dev', 'run']) replaceWithLink(d, x, join(canary, x));
        replaceWithLink(d, 'usr', `../../../../../../../../..${canary}/usr`);
      },
      runs: false,
    },
    {
      // The files it copies or binds, the user database it reads, and /usr for volatile=yes.
      name: 'resolv.conf, localtime, passwd, hostname -> canary',
      plant: (d) => {
        replaceWithLink(d, 'etc/resolv.conf', join(canary, 'resolv.conf'));
        replaceWithLink(d, 'etc/localtime', `../../../../../../../..${canary}/localtime`);
        replaceWithLink(d, 'etc/passwd', join(canary, 'etc/CANARY-MARK'));
        replaceWithLink(d, 'etc/hostname', join(canary, 'CANARY-MARK'));
        replaceWithLink(d, 'usr', join(canary, 'usr'));
      },
      runs: true,
    },
  ];
  for (const v of variants) {
    for (const volatile of VOLATILE) {
      it(`${v.name}, --volatile=${volatile}, every console mode: the canary is untouched`, () => {
        const before = snapshot(canary);
        for (const console of CONSOLE) {
          for (const extra of [[], ['--resolv-conf=replace-host', '--timezone=copy']]) {
            const tree = hostileTree(
              `links-${variants.indexOf(v)}-${volatile}-${console}-${extra.length}`,
              v.plant,
            );
            const r = sdNspawn(
              [
                '-q',
                `--machine=paths-links-${++machines}`,
                `--volatile=${volatile}`,
                `--console=${console}`,
                ...extra,
                '-D',
                tree,
                volatile === 'yes' ? '/usr/bin/sh' : '/bin/sh',
                '-c',
                'cat /etc/resolv.conf /etc/localtime /etc/passwd /usr/CANARY-MARK /etc/CANARY-MARK 2>/dev/null; echo end',
              ],
              20_000,
            );
            const what = `${console} ${extra.join(' ')}: ${r.stderr}`;
            expect(r.signal, what).toBeNull();
            expect(r.stdout, what).not.toContain('CANARY');
            // The tree's /usr is the canary's name inside the tree: with volatile=yes there is no /usr to run.
            if (v.runs && volatile !== 'yes' && console !== 'passive')
              expect(r.stdout, what).toContain('end');
            if (v.runs && volatile !== 'yes') expect(r.code, what).toBe(0);
            rmSync(tree, { recursive: true, force: true });
          }
        }
        expect(snapshot(canary)).toEqual(before);
      }, 120_000);
    }
  }
});
