import { spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { machineScopeName } from '@sd/basic';
import { closeQuietly, LOCK, O, open, tryFlock } from '@sd/sys';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { candidateShift, rangeLockPath } from '../packages/nspawn/src/container/userns.js';
import { makeBusyboxTree, NSPAWN_CLI, sdNspawn, sdNspawnAsync } from './lib/trees.js';

// --private-users ranges are exclusive: a lock file per range under
// /run/sd-nspawn/nspawn-uid, held while the container runs. Each test here
// fails when that lock is not taken (userns.ts tryLock) or not honoured.

const lockPath = (shift: number) => rangeLockPath('/run/sd-nspawn', shift);

let tree: ReturnType<typeof makeBusyboxTree>;
beforeAll(() => {
  tree = makeBusyboxTree();
});
afterAll(() => tree?.remove());

/** Holds the lock of a range as a running container would; returns the release. */
function holdRange(shift: number): () => void {
  const fd = open(lockPath(shift), O.CREAT | O.RDWR, 0o600);
  if (!tryFlock(fd, LOCK.EX | LOCK.NB, lockPath(shift))) {
    closeQuietly(fd);
    throw new Error(`${lockPath(shift)} is already held: another run is using this range`);
  }
  return () => {
    rmSync(lockPath(shift), { force: true });
    closeQuietly(fd);
  };
}

/** Nothing of machine `name` is left: no notify socket, no mount, no scope. */
function nothingLeftOf(name: string): void {
  expect(readdirSync('/run/sd-nspawn').filter((f) => f.startsWith(`${name}.`))).toEqual([]);
  expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(`/run/sd-nspawn/${name}.`);
  expect(scopeDirs(name).filter((d) => existsSync(d))).toEqual([]);
}

/** Where machine `name`'s scope would be in every mounted hierarchy (v1 and unified), below our own cgroup. */
function scopeDirs(name: string): string[] {
  const out: string[] = [];
  for (const line of readFileSync('/proc/self/cgroup', 'utf8').trim().split('\n')) {
    const [, controllers, path] = line.split(':') as [string, string, string];
    const dir = controllers === '' ? 'unified' : controllers.replace(/^name=/, '');
    for (const base of [`/sys/fs/cgroup/${dir}`, '/sys/fs/cgroup'])
      if (existsSync(`${base}/cgroup.procs`)) {
        out.push(`${base}${path.replace(/\/$/, '')}/machine.slice/${machineScopeName(name)}`);
        break;
      }
  }
  return out;
}

/** sd-nspawn's arguments to run `cmd` as machine `name` in the fixed range at `shift`. */
const fixedArgs = (name: string, shift: number, ...cmd: string[]) => [
  '-q',
  '-D',
  tree.dir,
  '--read-only',
  `--machine=${name}`,
  `--private-users=${shift}:65536`,
  ...cmd,
];

/** sd-nspawn running `true` as machine `name` in the fixed range at `shift`. */
const runFixed = (name: string, shift: number) => sdNspawn(fixedArgs(name, shift, 'true'));

const shiftOf = (uidMap: string) => Number(uidMap.trim().split(/\s+/)[1]);

describe('--private-users ranges', () => {
  it('pick: a held first candidate is passed over for the next one', () => {
    const name = 'tst-userns-held';
    const first = candidateShift(name, 0);
    const release = holdRange(first);
    try {
      const r = sdNspawn([
        '-q',
        '-D',
        tree.dir,
        '--read-only',
        `--machine=${name}`,
        '-U',
        'cat',
        '/proc/self/uid_map',
      ]);
      expect(r.code, r.stderr).toBe(0);
      expect(shiftOf(r.stdout)).toBe(candidateShift(name, 1));
      // Released at exit, its lock file with it (as systemd-nspawn removes its own).
      expect(existsSync(lockPath(candidateShift(name, 1)))).toBe(false);
    } finally {
      release();
    }
    nothingLeftOf(name);
  });

  it('fixed: a range another holder has is refused with one line, exit 1, nothing left', () => {
    const name = 'tst-userns-taken';
    const shift = 0x6ffe0000;
    const release = holdRange(shift);
    let r: ReturnType<typeof sdNspawn>;
    try {
      r = runFixed(name, shift);
    } finally {
      release();
    }
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`sd-nspawn: UID range ${shift}:65536 is in use by another container\n`);
    nothingLeftOf(name);
  });

  it("fixed: a link planted as the range's lock file is refused, its target never made", () => {
    const name = 'tst-userns-link';
    const shift = 0x6ffd0000;
    const target = `/tmp/sd-test-userns-link-target.${process.pid}`;
    mkdirSync('/run/sd-nspawn/nspawn-uid', { recursive: true, mode: 0o755 });
    symlinkSync(target, lockPath(shift));
    let r: ReturnType<typeof sdNspawn>;
    try {
      r = runFixed(name, shift);
      expect(existsSync(target)).toBe(false);
      expect(lstatSync(lockPath(shift)).isSymbolicLink()).toBe(true);
    } finally {
      rmSync(lockPath(shift), { force: true });
      rmSync(target, { force: true });
    }
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^sd-nspawn: open '\/run\/sd-nspawn\/nspawn-uid\/6ffd0000': ELOOP [^\n]*\n$/);
    nothingLeftOf(name);
  });

  it('fixed: of two containers asking for the same range at once, the second is refused', async () => {
    const shift = 0x6ffd0000;
    const args = (name: string, cmd: string) => ['--pipe', ...fixedArgs(name, shift, 'sh', '-c', cmd)];
    // The first says "up" once it runs (its lock taken), then keeps the range until told to go.
    const first = spawn(
      process.execPath,
      [NSPAWN_CLI, ...args('tst-userns-one', 'echo up; read x; echo bye')],
      {
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    let out = '';
    let err = '';
    first.stderr.on('data', (d) => (err += d));
    const firstExit = new Promise<number | null>((res) => first.on('close', res));
    await new Promise<void>((res, rej) => {
      first.stdout.on('data', (d) => {
        out += d;
        if (out.includes('up\n')) res();
      });
      first.on('close', () => rej(new Error(`first container ended before it ran: ${err}`)));
    });
    try {
      const second = await sdNspawnAsync(args('tst-userns-two', 'echo ran'));
      expect(second.stdout).toBe('');
      expect(second.stderr).toBe(`sd-nspawn: UID range ${shift}:65536 is in use by another container\n`);
      expect(second.code).toBe(1);
      nothingLeftOf('tst-userns-two');
    } finally {
      first.stdin.end('go\n');
    }
    expect(await firstExit, err).toBe(0);
    expect(out).toBe('up\nbye\n');
    // Released at exit: the range can be had again.
    const again = sdNspawn(args('tst-userns-one', 'cat /proc/self/uid_map'));
    expect(again.code, again.stderr).toBe(0);
    expect(shiftOf(again.stdout)).toBe(shift);
    expect(existsSync(lockPath(shift))).toBe(false);
    nothingLeftOf('tst-userns-one');
  });
});
