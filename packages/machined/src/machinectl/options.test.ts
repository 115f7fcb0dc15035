import { describe, expect, it } from 'vitest';
import type { Machine1 } from './client.js';
import { runMachinectl } from './main.js';

// machinectl's options that no other test reaches, each shown to change what is sent or
// printed (test-e2e/option-audit.test.ts names this file for them).

function fake(replies: Record<string, unknown[] | ((...a: unknown[]) => unknown[])>) {
  const calls: Array<[string, unknown[]]> = [];
  const bus: Machine1 = {
    async call(_path, _iface, member, _sig, body) {
      calls.push([member, body]);
      const r = replies[member];
      if (r === undefined) throw new Error(`no reply for ${member}`);
      return typeof r === 'function' ? r(...body) : r;
    },
    async getAll() {
      return {};
    },
    close() {},
  };
  return { bus, calls };
}

async function run(argv: string[], replies: Parameters<typeof fake>[0]) {
  const f = fake(replies);
  let out = '';
  let err = '';
  const code = await runMachinectl(argv, {
    connect: async () => f.bus,
    out: (s) => {
      out += s;
    },
    err: (s) => {
      err += s;
    },
    isTTY: false,
  });
  return { code, out, err, calls: f.calls };
}

describe('machinectl options have effects', () => {
  it('shell --uid and -E/--setenv go into OpenMachineShell', async () => {
    const r = await run(['shell', '--uid=u1', '-E', 'A=1', '--setenv=B=2', 'm', '/bin/true'], {});
    const [member, body] = r.calls[0]!;
    expect(member).toBe('OpenMachineShell');
    expect(body.slice(0, 4)).toEqual(['m', 'u1', '/bin/true', ['/bin/true']]);
    expect(body[4]).toEqual(expect.arrayContaining(['A=1', 'B=2']));
  });

  it('-q/--quiet silences clean', async () => {
    const replies = { CleanPool: [[['.old', 4096n]]] };
    expect((await run(['clean'], replies)).err).toMatch(/Removed image '\.old'/);
    expect((await run(['clean', '-q'], replies)).err).toBe('');
    expect((await run(['clean', '--quiet'], replies)).err).toBe('');
  });

  it('-l/--full shows every address of a machine', async () => {
    const replies = {
      ListMachines: [[['web', 'container', 'sd-nspawn', '/m/web']]],
      GetMachineOSRelease: [{}],
      GetMachineAddresses: [
        [
          [2, new Uint8Array([10, 0, 0, 2])],
          [2, new Uint8Array([10, 0, 0, 3])],
        ],
      ],
    };
    expect((await run(['list'], replies)).out).not.toContain('10.0.0.3');
    expect((await run(['list', '-l'], replies)).out).toContain('10.0.0.3');
    expect((await run(['list', '--full'], replies)).out).toContain('10.0.0.3');
  });

  it('--no-pager and --no-ask-password change nothing there is (no pager, no password prompt)', async () => {
    const replies = { ListMachines: [[]] };
    const plain = await run(['list'], replies);
    const flagged = await run(['list', '--no-pager', '--no-ask-password'], replies);
    expect(flagged).toEqual(plain);
  });
});

describe('machinectl output options', () => {
  it('-j is --json=short off a terminal', async () => {
    const replies = {
      ListMachines: [[['web', 'container', 'sd-nspawn', '/m/web']]],
      GetMachineOSRelease: [{}],
      GetMachineAddresses: [[]],
    };
    const j = await run(['list', '-j'], replies);
    expect(j.out).toBe((await run(['list', '--json=short'], replies)).out);
    expect(JSON.parse(j.out)).toEqual([expect.objectContaining({ machine: 'web' })]);
  });
});
