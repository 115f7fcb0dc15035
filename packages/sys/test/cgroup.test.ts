import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import {
  Cgroup,
  close,
  detectCgroups,
  InvalidArgumentError,
  layoutFromMountinfo,
  SdError,
  SIG,
  SyscallError,
  validateCgroupPath,
} from '../src/index.js';

const uniq = () => `sd-test-${randomBytes(6).toString('hex')}`;

function sleeper(): ChildProcess {
  const child = spawn('sleep', ['600'], { stdio: 'ignore' });
  if (child.pid === undefined) throw new Error('spawn sleep failed');
  return child;
}

function exited(child: ChildProcess): Promise<NodeJS.Signals | number | null> {
  if (child.exitCode !== null || child.signalCode !== null)
    return Promise.resolve(child.signalCode ?? child.exitCode);
  return new Promise((resolve) => child.once('exit', (code, sig) => resolve(sig ?? code)));
}

describe('cgroups', () => {
  const cgroups: Cgroup[] = [];
  const children: ChildProcess[] = [];

  afterEach(async () => {
    for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const cg of cgroups.splice(0).reverse()) {
      try {
        await cg.kill(SIG.KILL);
      } catch {
        // the test reports its own failure
      }
      await cg.remove();
    }
  });

  it('detects the layout of this machine as statfs and findmnt see it', () => {
    // The oracle: the file system type of /sys/fs/cgroup (and of unified/) by stat -f, and
    // every v1 hierarchy with its controllers by findmnt — none of it through our parser.
    const fsType = (p: string) => spawnSync('stat', ['-fc', '%T', p], { encoding: 'utf8' }).stdout.trim();
    const top = fsType('/sys/fs/cgroup');
    const expectedMode =
      top === 'cgroup2fs' ? 'v2' : fsType('/sys/fs/cgroup/unified') === 'cgroup2fs' ? 'hybrid' : 'v1';
    const found = JSON.parse(
      execFileSync('findmnt', ['--json', '-t', 'cgroup', '-o', 'TARGET,FS-OPTIONS'], { encoding: 'utf8' }) ||
        '{"filesystems":[]}',
    ) as { filesystems: Array<{ target: string; 'fs-options': string }> };
    const expected: Record<string, string> = {};
    for (const f of found.filesystems)
      for (const o of f['fs-options'].split(','))
        if (
          !['rw', 'ro', 'clone_children', 'noprefix', 'xattr'].includes(o) &&
          !o.startsWith('release_agent=')
        )
          expected[o] ??= f.target;

    const layout = detectCgroups();
    expect(layout.mode).toBe(expectedMode);
    expect(layout.unifiedRoot).toBe(
      { v2: '/sys/fs/cgroup', hybrid: '/sys/fs/cgroup/unified', v1: undefined }[expectedMode],
    );
    expect(layout.controllers).toEqual(expected);
    for (const h of layout.hierarchies) expect(existsSync(`${h.mountPoint}/cgroup.procs`)).toBe(true);
  });

  it('parses hybrid and v2 mountinfo', () => {
    const hybrid = [
      '30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755',
      '31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct',
      '34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory',
      '39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd',
      '40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw',
    ].join('\n');
    const magic = (p: string) => (p.endsWith('unified') ? 0x63677270n : 0x27e0ebn);
    const h = layoutFromMountinfo(hybrid, magic);
    expect(h.mode).toBe('hybrid');
    expect(h.unifiedRoot).toBe('/sys/fs/cgroup/unified');
    expect(h.controllers).toEqual({
      cpu: '/sys/fs/cgroup/cpu,cpuacct',
      cpuacct: '/sys/fs/cgroup/cpu,cpuacct',
      memory: '/sys/fs/cgroup/memory',
      'name=systemd': '/sys/fs/cgroup/systemd',
    });
    const v2 = layoutFromMountinfo(
      '25 22 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate',
      () => 0x63677270n,
    );
    expect(v2).toMatchObject({ mode: 'v2', unifiedRoot: '/sys/fs/cgroup', controllers: {} });
  });

  it('validates paths', () => {
    expect(validateCgroupPath('/machine.slice/machine-foo.scope/')).toBe('machine.slice/machine-foo.scope');
    for (const bad of [
      '',
      '/',
      '../etc',
      'a/../../b',
      'a//b',
      'a/./b',
      'cgroup.procs',
      'memory.max',
      'a b',
      'tasks',
    ]) {
      expect(() => validateCgroupPath(bad), bad).toThrow(InvalidArgumentError);
    }
    expect(() => new Cgroup('x/../../etc')).toThrow(/x\/\.\.\/\.\.\/etc/);
  });

  it('creates, attaches, limits, kills and removes', async () => {
    const name = uniq();
    const cg = new Cgroup(`${name}/payload.scope`).create();
    const top = new Cgroup(name);
    cgroups.push(top);
    expect(cg.exists()).toBe(true);
    for (const dir of cg.dirs) expect(existsSync(dir)).toBe(true);

    const kids = [sleeper(), sleeper(), sleeper()];
    children.push(...kids);
    for (const k of kids) cg.attach(k.pid!);
    const pids = kids.map((k) => k.pid!).sort((a, b) => a - b);
    expect(cg.pids()).toEqual(pids);
    expect(top.pids()).toEqual(pids); // recursive
    expect(top.pids(false)).toEqual([]);
    for (const k of kids) {
      const own = readFileSync(`/proc/${k.pid}/cgroup`, 'utf8');
      for (const line of own.trim().split('\n')) expect(line.endsWith(`/${name}/payload.scope`)).toBe(true);
    }

    cg.setLimit('memory.max', 64n * 1024n * 1024n);
    expect(cg.getLimit('memory.max')).toBe(String(64 * 1024 * 1024));
    cg.setLimit('memory.max', 'max');
    expect(cg.getLimit('memory.max')).toBe('max');
    cg.setLimit('pids.max', 10);
    expect(cg.getLimit('pids.max')).toBe('10');
    cg.setLimit('cpu.weight', 200);
    expect(cg.getLimit('cpu.weight')).toBe('200');
    cg.setLimit('cpu.max', '50000 100000');
    expect(cg.getLimit('cpu.max')).toBe('50000 100000');
    if (cg.layout.controllers.cpu !== undefined) expect(cg.getLimit('cpu.shares')).toBe('2048');
    expect(() => cg.setLimit('memory.max', 'lots')).toThrow(InvalidArgumentError);

    const fd = cg.openDirFd();
    expect(fd).toBeGreaterThanOrEqual(0);
    close(fd);

    // Removing a cgroup that still has processes is a clear EBUSY naming the directory.
    const busy = await cg.remove({ timeoutMs: 50 }).catch((e: unknown) => e);
    expect(busy).toBeInstanceOf(SdError);
    expect((busy as SdError).code).toBe('EBUSY');
    expect((busy as Error).message).toContain(`${name}/payload.scope`);

    const n = await top.kill(SIG.KILL);
    expect(n).toBe(3);
    expect(await Promise.all(kids.map(exited))).toEqual(['SIGKILL', 'SIGKILL', 'SIGKILL']);
    expect(top.isEmpty()).toBe(true);

    await top.remove();
    for (const dir of [...cg.dirs, ...top.dirs]) expect(existsSync(dir)).toBe(false);
    expect(top.exists()).toBe(false);
  });

  it('delivers other signals once to every process, also to forks', async () => {
    const cg = new Cgroup(uniq()).create();
    cgroups.push(cg);
    // A shell that forks a sleeper after it was moved: both must get SIGTERM.
    const sh = spawn('sh', ['-c', 'read x; sleep 600 & wait'], { stdio: ['pipe', 'ignore', 'ignore'] });
    children.push(sh);
    cg.attach(sh.pid!);
    sh.stdin!.write('go\n');
    for (let i = 0; i < 200 && cg.pids().length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    expect(cg.pids().length).toBe(2);
    const n = await cg.kill(SIG.TERM);
    expect(n).toBe(2);
    expect(await exited(sh)).toBe('SIGTERM');
    for (let i = 0; i < 200 && !cg.isEmpty(); i++) await new Promise((r) => setTimeout(r, 10));
    expect(cg.isEmpty()).toBe(true);
    await cg.remove();
    expect(cg.exists()).toBe(false);
  });

  it('tryRemove removes an empty cgroup with children everywhere, and leaves one a process is in', async () => {
    const name = `start4-${uniq()}`;
    const top = new Cgroup(name);
    cgroups.push(top);
    const leaf = new Cgroup(`${name}/payload`).create();
    const child = sleeper();
    children.push(child);
    leaf.attach(child.pid!);
    // Busy: nothing with the process is removed, the process is still in it.
    expect(top.tryRemove()).toBe(false);
    expect(leaf.pids()).toEqual([child.pid]);
    expect(top.exists()).toBe(true);
    child.kill('SIGKILL');
    await exited(child);
    // The kernel lets go of the exited process a moment later.
    let removed = false;
    for (let i = 0; i < 100 && !removed; i++) {
      removed = top.tryRemove();
      if (!removed) await new Promise((r) => setTimeout(r, 10));
    }
    expect(removed).toBe(true);
    for (const d of [...top.dirs, ...leaf.dirs]) expect(existsSync(d)).toBe(false);
    expect(top.tryRemove()).toBe(true);
  });

  it('names the path in errors', () => {
    const cg = new Cgroup(uniq());
    let err: unknown;
    try {
      cg.attach(process.pid);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SyscallError);
    expect((err as SyscallError).path).toContain(cg.path);
  });
});
