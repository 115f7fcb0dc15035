import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { SpawnProgram } from './program.js';
import { execStubInit, stubInitBytes } from './stub-init.js';

interface Build {
  buildAll: () => unknown;
  render: (r: unknown) => string;
  buildStubInit: () => unknown;
  renderStubInit: (r: unknown) => string;
}
const loadBuild = async () =>
  (await import(fileURLToPath(new URL('../../native/build.mjs', import.meta.url)))) as Build;

// The interpreter's bytes are committed (src/spawn/interp.generated.ts) so that
// installing the package needs no assembler; this proves they are exactly what
// native/*.S assembles to.
describe('spawn interpreter bytes', () => {
  it('match their assembly sources for every architecture', async () => {
    const build = await loadBuild();
    const committed = readFileSync(new URL('./interp.generated.ts', import.meta.url), 'utf8');
    expect(build.render(build.buildAll())).toBe(committed);
  });
});

describe('stub init executable', () => {
  it('matches native/stub-init-*.S for every architecture', async () => {
    const build = await loadBuild();
    const committed = readFileSync(new URL('./stub-init.generated.ts', import.meta.url), 'utf8');
    expect(build.renderStubInit(build.buildStubInit())).toBe(committed);
  });

  it('is a small static ELF executable for its machine', () => {
    for (const [arch, machine] of [
      ['x86_64', 62],
      ['aarch64', 183],
    ] as const) {
      const elf = stubInitBytes(arch);
      expect(elf.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
      expect(elf.readUInt16LE(16)).toBe(2); // ET_EXEC
      expect(elf.readUInt16LE(18)).toBe(machine);
      expect(elf.length).toBeLessThan(2048);
    }
  });

  it('is exec’d by execveat with the payload path and argv after its own name', () => {
    const p = new SpawnProgram();
    execStubInit(p, 5, '/bin/sh', ['-sh'], ['A=1']);
    expect(p.describe()).toEqual(['execveat(5, "", ["sd-stub-init", "/bin/sh", "-sh"], ["A=1"], 4096)']);
    expect(() => execStubInit(p, 5, '/bin/sh', [], [])).toThrow(/argv/);
  });
});
