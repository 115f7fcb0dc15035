import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { peerOrSkip } from '../../../tools/test/require.js';
import { aarch64 } from '../src/arch/aarch64.js';
import { AT, O } from '../src/constants.js';
import { SpawnProgram } from '../src/spawn/program.js';
import { stubInitBytes } from '../src/spawn/stub-init.js';

// The aarch64 interpreter, run for real: linked into a tiny static ELF with a
// program laid out for a fixed address, executed under qemu-user. The same
// checks as on x86_64: steps in order, result slots as arguments, an
// ignored failure, and the report of a failing step.

const QEMU = '/usr/bin/qemu-aarch64-static';
const AS = 'aarch64-linux-gnu-as';
const LD = 'aarch64-linux-gnu-ld';
const DATA = 0x600000n;
const have = (cmd: string) => spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status === 0;
const skip = peerOrSkip(
  !existsSync(QEMU)
    ? 'qemu-user-static is not installed (tools/setup installs it)'
    : !have(AS) || !have(LD)
      ? 'binutils-aarch64-linux-gnu is not installed (tools/setup installs it)'
      : undefined,
);

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sd-interp-aarch64-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Builds an ELF that runs `program` with the aarch64 interpreter, runs it, returns stdout and status. */
function run(program: SpawnProgram, name: string) {
  const { memory } = program.build({ reportFd: 1 }, DATA);
  writeFileSync(join(dir, `${name}.bin`), memory);
  writeFileSync(
    join(dir, `${name}.S`),
    `  .text\n  .globl _start\n_start:\n  ldr x0, =program\n  b sd_run\n  .ltorg\n  .data\n  .balign 8\nprogram:\n  .incbin "${name}.bin"\n`,
  );
  const interp = fileURLToPath(new URL('../native/aarch64.S', import.meta.url));
  execFileSync(AS, ['-o', join(dir, 'interp.o'), interp]);
  execFileSync(AS, ['-o', join(dir, `${name}.o`), join(dir, `${name}.S`)], { cwd: dir });
  execFileSync(LD, [
    '-static',
    '-nostdlib',
    `-Tdata=0x${DATA.toString(16)}`,
    '-o',
    join(dir, name),
    join(dir, `${name}.o`),
    join(dir, 'interp.o'),
  ]);
  const r = spawnSync(QEMU, [join(dir, name)], { timeout: 20_000 });
  return { out: r.stdout, status: r.status };
}

describe.skipIf(skip)('aarch64 spawn interpreter (under qemu-user)', () => {
  it('runs steps in order, passes result slots, goes on after an ignored failure', () => {
    const p = new SpawnProgram(aarch64);
    p.write(1, 'hello\n');
    p.openat(AT.FDCWD, '/no/such/file', O.RDONLY, 0, { ignoreErrno: true });
    const fd = p.syscall('dup3', aarch64.dup3, [1, 7, 0], { result: true })!;
    p.write(fd, 'via slot\n');
    p.exit(3);
    const { out, status } = run(p, 'ok');
    expect(out.toString()).toBe('hello\nvia slot\n');
    expect(status).toBe(3);
  });

  it('reports the failing step and its errno, then exits 127', () => {
    const p = new SpawnProgram(aarch64);
    p.write(1, 'a\n');
    p.mkdir('/no/such/dir/x');
    p.write(1, 'not reached\n');
    const { out, status } = run(p, 'fail');
    expect(out.subarray(0, 2).toString()).toBe('a\n');
    expect(out.length).toBe(10);
    expect(out.readUInt32LE(2)).toBe(1); // step
    expect(out.readUInt32LE(6)).toBe(2); // ENOENT
    expect(status).toBe(127);
  });

  it('on a positive result of a jump step goes on at its target, on zero at the next step', () => {
    const p = new SpawnProgram(aarch64);
    p.syscall('getpid', aarch64.getpid, []);
    p.steps.at(-1)!.jump = 3;
    p.write(1, 'skipped\n');
    p.exit(5);
    p.write(1, 'jumped\n');
    p.umask(0);
    // The second umask(0) returns 0: no jump.
    p.syscall('umask', aarch64.umask, [0]);
    p.steps.at(-1)!.jump = 8;
    p.write(1, 'zero\n');
    p.exit(4);
    const { out, status } = run(p, 'jump');
    expect(out.toString()).toBe('jumped\nzero\n');
    expect(status).toBe(4);
  });

  it('runs past the last step to exit status 0', () => {
    const p = new SpawnProgram(aarch64);
    p.write(1, 'done\n');
    const { out, status } = run(p, 'end');
    expect(out.toString()).toBe('done\n');
    expect(status).toBe(0);
  });

  it('the aarch64 stub init forks, reaps its payload and passes on its status', () => {
    // Without binfmt_misc qemu-user cannot exec another aarch64 binary, so the
    // payload is one that does not exist: the child reports and exits 127, the
    // stub reaps it and exits with that status.
    const stub = join(dir, 'stub');
    writeFileSync(stub, stubInitBytes('aarch64'), { mode: 0o755 });
    const r = spawnSync(QEMU, [stub, '/no/such/payload', 'payload'], { timeout: 20_000 });
    expect(r.stderr.toString()).toMatch(/sd-stub-init: cannot execute \/no\/such\/payload/);
    expect(r.status).toBe(127);
  });
});
