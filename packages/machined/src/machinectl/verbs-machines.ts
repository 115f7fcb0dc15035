import { parseSignal, UsageError } from './args.js';
import {
  BusCallError,
  IMAGE_IFACE,
  MACHINE_IFACE,
  MANAGER_IFACE,
  MANAGER_PATH,
  manager,
  RUNNER_IFACE,
} from './client.js';
import { failed, type Verb, type VerbContext } from './context.js';
import {
  formatAddress,
  formatRelative,
  formatTimestamp,
  renderProperties,
  renderTable,
  tableJson,
} from './format.js';

const SIGRTMIN = 34;
const SIGINT = 2;

async function addresses(ctx: VerbContext, name: string): Promise<string[]> {
  try {
    const [list] = await manager(ctx.bus, 'GetMachineAddresses', 's', name);
    return ((list ?? []) as Array<[number, Uint8Array]>).map(([f, b]) => formatAddress(f, b));
  } catch {
    return [];
  }
}

async function osRelease(ctx: VerbContext, name: string): Promise<Record<string, string>> {
  try {
    const [os] = await manager(ctx.bus, 'GetMachineOSRelease', 's', name);
    return (os ?? {}) as Record<string, string>;
  } catch {
    return {};
  }
}

const MACHINE_COLUMNS = [
  { header: 'MACHINE' },
  { header: 'CLASS' },
  { header: 'SERVICE' },
  { header: 'OS' },
  { header: 'VERSION' },
  { header: 'ADDRESSES' },
];

export const list: Verb = async (ctx) => {
  let machines: Array<[string, string, string, string]>;
  try {
    machines = ((await manager(ctx.bus, 'ListMachines', ''))[0] ?? []) as typeof machines;
  } catch (e) {
    return failed(ctx, 'Could not get machines', e);
  }
  const rows: Array<Array<string | string[] | undefined>> = [];
  for (const [name, cls, service] of machines.sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    if (name.startsWith('.') && !ctx.options.all) continue;
    const os = await osRelease(ctx, name);
    const addrs = await addresses(ctx, name);
    const shown = ctx.options.full || addrs.length <= 1 ? addrs : [addrs[0]!, '…'];
    rows.push([name, cls, service, os.ID, os.VERSION_ID, ctx.options.json === 'off' ? shown : addrs]);
  }
  if (ctx.options.json !== 'off') {
    ctx.out(tableJson(MACHINE_COLUMNS, rows, ctx.options.json));
    return 0;
  }
  if (rows.length === 0) {
    if (!ctx.options.noLegend) ctx.out('No machines.\n');
    return 0;
  }
  ctx.out(renderTable(MACHINE_COLUMNS, rows, { legend: !ctx.options.noLegend, color: ctx.color }));
  if (!ctx.options.noLegend) ctx.out(`\n${rows.length} machines listed.\n`);
  return 0;
};

async function machinePath(ctx: VerbContext, name: string): Promise<string> {
  return (await manager(ctx.bus, 'GetMachine', 's', name))[0] as string;
}

const label = (l: string) => `${l.padStart(16)}: `;

export const status: Verb = async (ctx, args) => {
  let rc = 0;
  for (const [i, name] of args.entries()) {
    try {
      const p = await ctx.bus.getAll(await machinePath(ctx, name), MACHINE_IFACE);
      const id =
        p.Id instanceof Uint8Array && p.Id.some((b) => b !== 0)
          ? `(${Buffer.from(p.Id).toString('hex')})`
          : '';
      const lines = [`${p.Name}${id}`];
      const since = formatTimestamp(p.Timestamp as bigint);
      if (since) lines.push(`${label('Since')}${since}; ${formatRelative(p.Timestamp as bigint)}`);
      if (p.Leader) lines.push(`${label('Leader')}${p.Leader}`);
      lines.push(`${label('Service')}${p.Service || '-'}; class ${p.Class}`);
      if (p.RootDirectory) lines.push(`${label('Root')}${p.RootDirectory}`);
      const ifaces = (p.NetworkInterfaces as number[] | undefined) ?? [];
      if (ifaces.length) lines.push(`${label('Iface')}${ifaces.join(' ')}`);
      const addrs = await addresses(ctx, name);
      addrs.forEach((a, k) => lines.push(`${k === 0 ? label('Address') : ' '.repeat(18)}${a}`));
      const os = await osRelease(ctx, name);
      const pretty = os.PRETTY_NAME ?? os.NAME;
      if (pretty) lines.push(`${label('OS')}${pretty}`);
      if (p.Unit) lines.push(`${label('Unit')}${p.Unit}`);
      if (p.State) lines.push(`${label('State')}${p.State}`);
      ctx.out(`${i > 0 ? '\n' : ''}${lines.join('\n')}\n`);
    } catch (e) {
      rc = failed(ctx, 'Could not get machine', e);
    }
  }
  return rc;
};

/** show: the Manager's properties without names, else each machine's (or image's, with `image`). */
export function showVerb(kind: 'machine' | 'image'): Verb {
  return async (ctx, args) => {
    const iface = kind === 'machine' ? MACHINE_IFACE : IMAGE_IFACE;
    const opts = { properties: ctx.options.properties, value: ctx.options.value, all: ctx.options.all };
    try {
      if (args.length === 0) {
        ctx.out(renderProperties(await ctx.bus.getAll(MANAGER_PATH, MANAGER_IFACE), opts));
        return 0;
      }
      for (const [i, name] of args.entries()) {
        const [path] = await manager(ctx.bus, kind === 'machine' ? 'GetMachine' : 'GetImage', 's', name);
        const text = renderProperties(await ctx.bus.getAll(path as string, iface), opts);
        ctx.out(i > 0 && !ctx.options.value ? `\n${text}` : text);
      }
      return 0;
    } catch (e) {
      return failed(ctx, `Could not get ${kind}`, e);
    }
  };
}

export const login: Verb = async (ctx, args) => {
  const name = args[0] ?? '.host';
  try {
    const [fd, pty] = await manager(ctx.bus, 'OpenMachineLogin', 's', name);
    if (!ctx.options.quiet)
      ctx.err(`Connected to machine ${name}. Press ^] three times within 1s to exit session.\n`);
    // Loaded here: the pty forwarder brings koffi, which no other verb needs.
    const { attachPty } = await import('./pty.js');
    await attachPty(fd as number, ctx, true, true);
    if (!ctx.options.quiet) ctx.err(`\nConnection to machine ${name} terminated.\n`);
    void pty;
    return 0;
  } catch (e) {
    return failed(ctx, 'Failed to get login PTY', e);
  }
};

export const shell: Verb = async (ctx, args) => {
  const target = args[0] ?? '.host';
  const at = target.indexOf('@');
  let user = at >= 0 ? target.slice(0, at) : (ctx.options.uid ?? '');
  const name = (at >= 0 ? target.slice(at + 1) : target) || '.host';
  if (user === '' && ctx.options.uid) user = ctx.options.uid;
  const cmd = args.slice(1);
  const env = [...ctx.options.setenv];
  if (process.env.TERM && !env.some((e) => e.startsWith('TERM='))) env.push(`TERM=${process.env.TERM}`);
  try {
    const [fd] = await manager(ctx.bus, 'OpenMachineShell', 'sssasas', name, user, cmd[0] ?? '', cmd, env);
    if (!ctx.options.quiet && cmd.length === 0)
      ctx.err(`Connected to machine ${name}. Press ^] three times within 1s or exit session to exit.\n`);
    const { attachPty } = await import('./pty.js');
    await attachPty(fd as number, ctx, cmd.length === 0);
    if (!ctx.options.quiet && cmd.length === 0) ctx.err(`\nConnection to machine ${name} terminated.\n`);
    return 0;
  } catch (e) {
    return failed(ctx, 'Failed to get shell PTY', e);
  }
};

function killVerb(
  whom: (ctx: VerbContext) => string,
  signal: (ctx: VerbContext) => number,
  what: string,
): Verb {
  return async (ctx, args) => {
    let rc = 0;
    for (const name of args) {
      try {
        await manager(ctx.bus, 'KillMachine', 'ssi', name, whom(ctx), signal(ctx));
      } catch (e) {
        rc = failed(ctx, `Could not ${what} machine`, e);
      }
    }
    return rc;
  };
}

export const poweroff = killVerb(
  () => 'leader',
  () => SIGRTMIN + 4,
  'power off',
);
export const reboot = killVerb(
  () => 'leader',
  () => SIGINT,
  'reboot',
);
/** stop: asks the machine's init to power off, as stopping systemd-nspawn@.service ends up doing. */
export const stop = poweroff;
export const kill = killVerb(
  (ctx) => {
    const w = ctx.options.killWhom ?? 'all';
    if (w !== 'all' && w !== 'leader') throw new UsageError(`Invalid --kill-whom= value: ${w}`);
    return w;
  },
  (ctx) => parseSignal(ctx.options.signal ?? 'SIGTERM'),
  'kill',
);

export const terminate: Verb = async (ctx, args) => {
  let rc = 0;
  for (const name of args) {
    try {
      await manager(ctx.bus, 'TerminateMachine', 's', name);
    } catch (e) {
      rc = failed(ctx, 'Could not terminate machine', e);
    }
  }
  return rc;
};

export const bind: Verb = async (ctx, args) => {
  const [name, src, dest] = args as [string, string, string | undefined];
  try {
    await manager(
      ctx.bus,
      'BindMountMachine',
      'sssbb',
      name,
      src,
      dest ?? src,
      ctx.options.readOnly,
      ctx.options.mkdir,
    );
    return 0;
  } catch (e) {
    return failed(ctx, 'Failed to bind mount', e);
  }
};

export function copyVerb(direction: 'To' | 'From'): Verb {
  return async (ctx, args) => {
    const [name, src, dest] = args as [string, string, string | undefined];
    try {
      if (ctx.options.force)
        await manager(ctx.bus, `Copy${direction}MachineWithFlags`, 'ssst', name, src, dest ?? src, 1n);
      else await manager(ctx.bus, `Copy${direction}Machine`, 'sss', name, src, dest ?? src);
      return 0;
    } catch (e) {
      return failed(ctx, 'Failed to copy', e);
    }
  };
}

/**
 * start: machine1 has no method to start a machine (systemd starts
 * systemd-nspawn@NAME.service through PID 1). sd-machined runs sd-nspawn
 * --boot for the image itself (io.sd.machine1.Runner); against a daemon
 * without that interface (systemd's machined), sd-nspawn is started
 * detached from here, and we say so.
 */
export const start: Verb = async (ctx, args) => {
  let rc = 0;
  for (const name of args) {
    try {
      try {
        await ctx.bus.call(MANAGER_PATH, RUNNER_IFACE, 'StartMachine', 's', [name]);
        continue;
      } catch (e) {
        const type = e instanceof BusCallError ? e.busName : '';
        if (!/UnknownMethod|UnknownInterface|UnknownObject/.test(type)) throw e;
      }
      const [path] = await manager(ctx.bus, 'GetImage', 's', name);
      const p = await ctx.bus.getAll(path as string, IMAGE_IFACE);
      const where = p.Type === 'raw' || p.Type === 'block' ? ['-i', String(p.Path)] : ['-D', String(p.Path)];
      // node:child_process only here: loading it (and node:net with it) costs every machinectl start ~2 ms.
      const { spawn } = process.getBuiltinModule('node:child_process');
      const child = spawn('sd-nspawn', ['--boot', '-M', name, ...where], { detached: true, stdio: 'ignore' });
      await new Promise<void>((resolve, reject) => {
        child.once('spawn', resolve);
        child.once('error', reject);
      });
      child.unref();
      ctx.err(
        `Note: the machine daemon cannot start machines; started sd-nspawn --boot -M ${name} (PID ${child.pid}) directly.\n`,
      );
    } catch (e) {
      rc = failed(ctx, `Failed to start machine ${name}`, e);
    }
  }
  return rc;
};
