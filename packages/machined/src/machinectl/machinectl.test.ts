import { describe, expect, it } from 'vitest';
import { parseArgs, parseSignal, parseSize, UsageError } from './args.js';
import type { Machine1 } from './client.js';
import { formatAddress, formatBytes, renderTable, useColor } from './format.js';
import { runMachinectl } from './main.js';

const MAX = 0xffff_ffff_ffff_ffffn;

/** A fake machine1: answers from fixtures and records the calls. */
function fake(replies: Record<string, unknown[] | ((...a: unknown[]) => unknown[])>) {
  const calls: Array<[string, unknown[]]> = [];
  const bus: Machine1 = {
    async call(_path, _iface, member, _sig, body) {
      calls.push([member, body]);
      const r = replies[member];
      if (r === undefined) throw Object.assign(new Error(`No machine '${body[0]}' known`), { busName: 'x' });
      return typeof r === 'function' ? r(...body) : r;
    },
    async getAll(path) {
      return ((replies[`props:${path}`] as unknown[] | undefined)?.[0] ?? {}) as Record<string, unknown>;
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

describe('machinectl arguments', () => {
  it('parses options anywhere and keeps the shell command intact', () => {
    expect(parseArgs([]).verb).toBe('list');
    const p = parseArgs(['--no-legend', 'kill', 'web', '-s', 'HUP', '--kill-whom=leader']);
    expect(p).toMatchObject({
      verb: 'kill',
      args: ['web'],
      options: { noLegend: true, signal: 'HUP', killWhom: 'leader' },
    });
    const s = parseArgs(['shell', 'root@web', '/bin/ls', '-l', '--color']);
    expect(s.args).toEqual(['root@web', '/bin/ls', '-l', '--color']);
    expect(parseArgs(['show', '-P', 'Name', 'x']).options).toMatchObject({
      value: true,
      properties: ['Name'],
    });
    expect(parseArgs(['--json=short', 'list-images']).options.json).toBe('short');
    expect(() => parseArgs(['--bogus'])).toThrow(UsageError);
    expect(() => parseArgs(['--json=yaml'])).toThrow(/Unknown argument to --json=/);
  });

  it('parses sizes and signals like systemd', () => {
    expect(parseSize('10G')).toBe(10n << 30n);
    expect(parseSize('1.5M')).toBe(1572864n);
    expect(parseSize('-')).toBe(MAX);
    expect(() => parseSize('ten')).toThrow(/Failed to parse size/);
    expect(parseSignal('SIGKILL')).toBe(9);
    expect(parseSignal('term')).toBe(15);
    expect(parseSignal('RTMIN+4')).toBe(38);
    expect(() => parseSignal('SIGNOPE')).toThrow();
  });
});

describe('machinectl formatting', () => {
  it('formats sizes, addresses and tables as systemd does', () => {
    expect(formatBytes(512)).toBe('512B');
    expect(formatBytes(1536)).toBe('1.5K');
    expect(formatBytes(3n << 30n)).toBe('3.0G');
    expect(formatBytes(MAX)).toBeUndefined();
    expect(formatAddress(2, new Uint8Array([10, 0, 0, 2]))).toBe('10.0.0.2');
    expect(formatAddress(10, new Uint8Array([0xfe, 0x80, ...Array(13).fill(0), 1]))).toBe('fe80::1');
    expect(
      renderTable([{ header: 'A' }, { header: 'BB' }], [['x', undefined]], { legend: true, color: false }),
    ).toBe('A BB\nx -\n');
    expect(useColor(true, { NO_COLOR: '1' })).toBe(false);
    expect(useColor(true, {})).toBe(true);
    expect(useColor(false, {})).toBe(false);
  });
});

describe('machinectl verbs against a fake machine1', () => {
  const machines = {
    ListMachines: [
      [
        ['web', 'container', 'sd-nspawn', '/m/web'],
        ['.host', 'host', '', '/m/_2ehost'],
      ],
    ],
    GetMachineOSRelease: [{ ID: 'debian', VERSION_ID: '12' }],
    GetMachineAddresses: [[[2, new Uint8Array([10, 0, 0, 2])]]],
  };

  it('lists machines in a borderless table with a footer', async () => {
    const r = await run(['list'], machines);
    expect(r.code).toBe(0);
    expect(r.out).toBe(
      'MACHINE CLASS     SERVICE   OS     VERSION ADDRESSES\n' +
        'web     container sd-nspawn debian 12      10.0.0.2\n\n1 machines listed.\n',
    );
    const all = await run(['list', '-a', '--no-legend'], machines);
    expect(all.out.split('\n').filter(Boolean)).toHaveLength(2);
    expect(all.out).not.toMatch(/MACHINE|listed/);
  });

  it('prints JSON rows', async () => {
    const r = await run(['list', '--json=short'], machines);
    expect(JSON.parse(r.out)).toEqual([
      {
        machine: 'web',
        class: 'container',
        service: 'sd-nspawn',
        os: 'debian',
        version: '12',
        addresses: ['10.0.0.2'],
      },
    ]);
  });

  it('says "No machines." and "No images." when empty', async () => {
    expect((await run(['list'], { ListMachines: [[]] })).out).toBe('No machines.\n');
    expect((await run(['list-images'], { ListImages: [[]] })).out).toBe('No images.\n');
  });

  it('lists images, hiding hidden ones unless -a', async () => {
    const images = {
      ListImages: [
        [
          ['deb', 'subvolume', false, 0n, 0n, 1536n, '/i/deb'],
          ['.hidden', 'directory', true, 0n, 0n, MAX, '/i/h'],
        ],
      ],
    };
    const r = await run(['list-images'], images);
    expect(r.out).toBe(
      'NAME TYPE      RO USAGE CREATED MODIFIED\ndeb  subvolume no  1.5K -       -\n\n1 images listed.\n',
    );
    const a = await run(['list-images', '--all', '--json=short'], images);
    expect(JSON.parse(a.out)).toHaveLength(2);
    expect(JSON.parse(a.out)[0]).toMatchObject({ name: '.hidden', ro: true, usage: null });
  });

  it('maps verbs to the bus methods of REFERENCE.md', async () => {
    const ok = {
      CloneImage: [],
      RenameImage: [],
      RemoveImage: [],
      MarkImageReadOnly: [],
      SetImageLimit: [],
      SetPoolLimit: [],
      KillMachine: [],
      TerminateMachine: [],
      BindMountMachine: [],
      CopyToMachine: [],
      CopyFromMachineWithFlags: [],
    };
    expect((await run(['clone', 'a', 'b', '--read-only'], ok)).calls).toEqual([
      ['CloneImage', ['a', 'b', true]],
    ]);
    expect((await run(['rename', 'a', 'b'], ok)).calls).toEqual([['RenameImage', ['a', 'b']]]);
    expect((await run(['remove', 'a', 'b'], ok)).calls).toHaveLength(2);
    expect((await run(['read-only', 'a', 'no'], ok)).calls).toEqual([['MarkImageReadOnly', ['a', false]]]);
    expect((await run(['set-limit', 'a', '1G'], ok)).calls).toEqual([['SetImageLimit', ['a', 1n << 30n]]]);
    expect((await run(['set-limit', '2G'], ok)).calls).toEqual([['SetPoolLimit', [2n << 30n]]]);
    expect((await run(['poweroff', 'w'], ok)).calls).toEqual([['KillMachine', ['w', 'leader', 38]]]);
    expect((await run(['reboot', 'w'], ok)).calls).toEqual([['KillMachine', ['w', 'leader', 2]]]);
    expect((await run(['kill', 'w', '-s', 'KILL'], ok)).calls).toEqual([['KillMachine', ['w', 'all', 9]]]);
    expect((await run(['terminate', 'w'], ok)).calls).toEqual([['TerminateMachine', ['w']]]);
    expect((await run(['bind', 'w', '/src', '--mkdir'], ok)).calls).toEqual([
      ['BindMountMachine', ['w', '/src', '/src', false, true]],
    ]);
    expect((await run(['copy-to', 'w', '/a', '/b'], ok)).calls).toEqual([
      ['CopyToMachine', ['w', '/a', '/b']],
    ]);
    expect((await run(['copy-from', 'w', '/a', '--force'], ok)).calls).toEqual([
      ['CopyFromMachineWithFlags', ['w', '/a', '/a', 1n]],
    ]);
  });

  it('shows properties with -p and --value', async () => {
    const replies = {
      GetMachine: ['/m/web'],
      'props:/m/web': [{ Name: 'web', Leader: 42, State: 'running', Id: new Uint8Array(16) }],
    };
    expect((await run(['show', 'web', '-p', 'Name,State'], replies)).out).toBe('Name=web\nState=running\n');
    expect((await run(['show', 'web', '-P', 'Leader'], replies)).out).toBe('42\n');
  });

  it('fails with status 1 and systemd-style messages', async () => {
    const r = await run(['terminate', 'nope'], {});
    expect(r.code).toBe(1);
    expect(r.err).toBe("Could not terminate machine: No machine 'nope' known\n");
    const u = await run(['clone', 'only-one'], {});
    expect(u).toMatchObject({ code: 1, err: 'machinectl: Too few arguments.\n' });
    expect((await run(['frobnicate'], {})).err).toMatch(/Unknown command verb 'frobnicate'/);
  });
});

// Options no other test reaches, each shown to change what is sent or printed (option-audit.test.ts).
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
