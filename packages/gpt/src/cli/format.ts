import { basename } from 'node:path';
import type { DissectedImage, DissectedPartition, Role } from '../dissect/model.js';

/** systemd-dissect's output: the summary, the table of partitions with a role, and its JSON. */

/** Bytes as systemd's format_bytes() writes them: 512B, 4.0K, 161.0M. */
export function formatBytes(n: number): string {
  const units = ['B', 'K', 'M', 'G', 'T', 'P', 'E'];
  if (n < 1024) return `${n}B`;
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)}${units[i]}`;
}

function verityOf(img: DissectedImage, role: Role): string | null {
  if (role !== 'root' && role !== 'usr') return null;
  return img.roles[`${role}-verity`] ? 'available' : 'no';
}

/** One row of systemd-dissect's JSON "mounts" array, plus sd's own fields (size, offset, file system id). */
export function mountRow(img: DissectedImage, p: DissectedPartition) {
  const role = p.role!;
  return {
    rw: p.flags.readOnly ? 'ro' : 'rw',
    designator: role,
    partition_uuid: p.uuid ?? null,
    partition_label: p.label ?? null,
    fstype: p.fs?.type ?? null,
    architecture: role === 'root' || role === 'usr' ? (p.arch ?? null) : null,
    verity: verityOf(img, role),
    growfs: p.flags.growFs,
    node: null,
    partno: p.number,
    offset: p.offset,
    size: p.size,
    fsuuid: p.fs?.uuid ?? null,
    fslabel: p.fs?.label ?? null,
  };
}

function partitionRow(p: DissectedPartition) {
  return {
    partno: p.number,
    offset: p.offset,
    size: p.size,
    type: p.typeGuid ?? (p.mbrType !== undefined ? `0x${p.mbrType.toString(16).padStart(2, '0')}` : null),
    type_name: p.typeName ?? null,
    partition_uuid: p.uuid ?? null,
    partition_label: p.label ?? null,
    attributes: p.attributes ?? null,
    bootable: p.bootable ?? null,
    read_only: p.flags.readOnly,
    no_auto: p.flags.noAuto,
    growfs: p.flags.growFs,
    fstype: p.fs?.type ?? null,
    fsuuid: p.fs?.uuid ?? null,
    fslabel: p.fs?.label ?? null,
    role: p.role ?? null,
    ignored: p.ignored ?? null,
  };
}

/** Partitions with a role, in table order. */
function withRole(img: DissectedImage): DissectedPartition[] {
  return img.partitions.filter((p) => p.role !== undefined);
}

export function toJson(img: DissectedImage) {
  return {
    name: basename(img.image),
    size: img.size,
    sectorSize: img.sectorSize,
    table: img.table,
    diskGuid: img.diskGuid ?? null,
    diskSignature: img.diskSignature ?? null,
    architecture: img.arch ?? null,
    mounts: withRole(img).map((p) => mountRow(img, p)),
    partitions: img.partitions.map(partitionRow),
    unusable: img.unusable ?? null,
    warnings: img.warnings,
  };
}

export interface TableStyle {
  legend: boolean;
  color: boolean;
}

function renderTable(header: string[], rows: string[][], style: TableStyle): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  // Numbers right-aligned, as systemd's tables do.
  const numeric = header.map((_, i) => rows.length > 0 && rows.every((r) => /^\d+$|^-$/.test(r[i] ?? '')));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (numeric[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join(' ')
      .trimEnd();
  const out: string[] = [];
  if (style.legend) {
    const h = line(header);
    out.push(style.color ? `\x1b[1m${h}\x1b[0m` : h);
  }
  for (const r of rows) out.push(line(r));
  return `${out.join('\n')}\n`;
}

export function formatTable(img: DissectedImage, style: TableStyle): string {
  let out = '';
  if (style.legend) {
    const table =
      img.table === 'none'
        ? 'none (a file system on the whole image)'
        : `${img.table.toUpperCase()}, ${img.sectorSize}-byte sectors`;
    out += `      Name: ${basename(img.image)}\n`;
    out += `      Size: ${formatBytes(img.size)}\n`;
    out += `     Table: ${table}\n`;
    if (img.diskGuid) out += `  Disk GUID: ${img.diskGuid}\n`;
    if (img.diskSignature) out += `  Disk ID: 0x${img.diskSignature}\n`;
    out += `    Use As: ${img.unusable ? '✗' : '✓'} root file system for a container\n\n`;
  }
  const header = [
    'RW',
    'DESIGNATOR',
    'PARTITION UUID',
    'PARTITION LABEL',
    'FSTYPE',
    'ARCHITECTURE',
    'VERITY',
    'GROWFS',
    'PARTNO',
    'SIZE',
  ];
  const rows = withRole(img).map((p) => {
    const r = mountRow(img, p);
    return [
      r.rw,
      r.designator,
      r.partition_uuid ?? '-',
      r.partition_label ?? '-',
      r.fstype ?? '-',
      r.architecture ?? '-',
      r.verity ?? '-',
      r.growfs ? 'yes' : 'no',
      r.partno === null ? '-' : String(r.partno),
      formatBytes(r.size),
    ];
  });
  out += renderTable(header, rows, style);
  if (style.legend) {
    const ignored = img.partitions.filter((p) => p.role === undefined);
    if (ignored.length) out += '\n';
    for (const p of ignored) out += `Partition ${p.number} not used: ${p.ignored ?? 'no role'}\n`;
    if (img.unusable) out += `\nNot usable as a root file system: ${img.unusable.message}\n`;
  }
  return out;
}
