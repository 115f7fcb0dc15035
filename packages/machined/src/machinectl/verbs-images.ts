import { parseBoolean, parseSize } from './args.js';
import { IMAGE_IFACE, manager } from './client.js';
import { failed, type Verb } from './context.js';
import { formatBytes, formatRelative, formatTimestamp, renderTable, tableJson } from './format.js';

const IMAGE_COLUMNS = [
  { header: 'NAME' },
  { header: 'TYPE' },
  { header: 'RO' },
  { header: 'USAGE', right: true },
  { header: 'CREATED' },
  { header: 'MODIFIED' },
];

type ImageRow = [string, string, boolean, bigint, bigint, bigint, string];

export const listImages: Verb = async (ctx) => {
  let images: ImageRow[];
  try {
    images = ((await manager(ctx.bus, 'ListImages', ''))[0] ?? []) as ImageRow[];
  } catch (e) {
    return failed(ctx, 'Could not get images', e);
  }
  const shown = images
    .filter(([name]) => ctx.options.all || !name.startsWith('.'))
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  if (ctx.options.json !== 'off') {
    ctx.out(
      tableJson(
        IMAGE_COLUMNS,
        shown.map(([n, t, ro, c, m, u]) => [n, t, ro, u, c, m]),
        ctx.options.json,
      ),
    );
    return 0;
  }
  if (shown.length === 0) {
    if (!ctx.options.noLegend) ctx.out('No images.\n');
    return 0;
  }
  const rows = shown.map(([n, t, ro, c, m, u]) => [
    n,
    t,
    ro,
    formatBytes(u),
    formatTimestamp(c),
    formatTimestamp(m),
  ]);
  ctx.out(renderTable(IMAGE_COLUMNS, rows, { legend: !ctx.options.noLegend, color: ctx.color }));
  if (!ctx.options.noLegend) ctx.out(`\n${rows.length} images listed.\n`);
  return 0;
};

const label = (l: string) => `${l.padStart(14)}: `;

export const imageStatus: Verb = async (ctx, args) => {
  let rc = 0;
  for (const [i, name] of args.entries()) {
    try {
      const [path] = await manager(ctx.bus, 'GetImage', 's', name);
      const p = await ctx.bus.getAll(path as string, IMAGE_IFACE);
      const lines = [String(p.Name)];
      const add = (l: string, v: string | undefined) => {
        if (v !== undefined && v !== '') lines.push(`${label(l)}${v}`);
      };
      add('Path', String(p.Path));
      add('Type', String(p.Type));
      const host = await manager(ctx.bus, 'GetImageHostname', 's', name).then(
        (r) => r[0] as string,
        () => undefined,
      );
      add('Hostname', host);
      const os = await manager(ctx.bus, 'GetImageOSRelease', 's', name).then(
        (r) => (r[0] ?? {}) as Record<string, string>,
        () => ({}) as Record<string, string>,
      );
      add('OS', os.PRETTY_NAME ?? os.NAME);
      add('RO', p.ReadOnly ? 'read-only' : 'writable');
      const when = (t: unknown) => {
        const abs = formatTimestamp(t as bigint);
        return abs && `${abs}; ${formatRelative(t as bigint)}`;
      };
      add('Created', when(p.CreationTimestamp));
      add('Modified', when(p.ModificationTimestamp));
      const usage = formatBytes(p.Usage as bigint);
      const excl = formatBytes(p.UsageExclusive as bigint);
      add('Usage', usage && (excl && excl !== usage ? `${usage} (exclusive: ${excl})` : usage));
      const limit = formatBytes(p.Limit as bigint);
      const lexcl = formatBytes(p.LimitExclusive as bigint);
      add('Limit', limit && (lexcl && lexcl !== limit ? `${limit} (exclusive: ${lexcl})` : limit));
      ctx.out(`${i > 0 ? '\n' : ''}${lines.join('\n')}\n`);
    } catch (e) {
      rc = failed(ctx, 'Could not get image', e);
    }
  }
  return rc;
};

export const clone: Verb = async (ctx, [name, newName]) => {
  try {
    await manager(ctx.bus, 'CloneImage', 'ssb', name, newName, ctx.options.readOnly);
    return 0;
  } catch (e) {
    return failed(ctx, 'Could not clone image', e);
  }
};

export const rename: Verb = async (ctx, [name, newName]) => {
  try {
    await manager(ctx.bus, 'RenameImage', 'ss', name, newName);
    return 0;
  } catch (e) {
    return failed(ctx, 'Could not rename image', e);
  }
};

export const remove: Verb = async (ctx, args) => {
  let rc = 0;
  for (const name of args) {
    try {
      await manager(ctx.bus, 'RemoveImage', 's', name);
    } catch (e) {
      rc = failed(ctx, 'Could not remove image', e);
    }
  }
  return rc;
};

export const readOnly: Verb = async (ctx, [name, value]) => {
  const b = value === undefined ? true : parseBoolean(value);
  try {
    await manager(ctx.bus, 'MarkImageReadOnly', 'sb', name, b);
    return 0;
  } catch (e) {
    return failed(ctx, 'Could not mark image read-only', e);
  }
};

export const setLimit: Verb = async (ctx, args) => {
  const bytes = parseSize(args[args.length - 1]!);
  try {
    if (args.length === 1) await manager(ctx.bus, 'SetPoolLimit', 't', bytes);
    else await manager(ctx.bus, 'SetImageLimit', 'st', args[0], bytes);
    return 0;
  } catch (e) {
    return failed(ctx, 'Could not set limit', e);
  }
};

export const clean: Verb = async (ctx) => {
  try {
    const [removed] = await manager(ctx.bus, 'CleanPool', 's', ctx.options.all ? 'all' : 'hidden');
    let total = 0n;
    let count = 0;
    for (const [name, usage] of (removed ?? []) as Array<[string, bigint]>) {
      count++;
      const freed = formatBytes(usage);
      if (freed) total += BigInt(usage);
      if (!ctx.options.quiet)
        ctx.err(
          freed
            ? `Removed image '${name}'. Freed exclusive disk space: ${freed}\n`
            : `Removed image '${name}'.\n`,
        );
    }
    if (!ctx.options.quiet) ctx.err(`Removed ${count} images in total. Freed ${formatBytes(total)}.\n`);
    return 0;
  } catch (e) {
    return failed(ctx, 'Failed to clean pool', e);
  }
};
