import type { OptionDef } from './options.js';

export interface HelpSpec {
  /** Usage lines without the leading indentation ("sd-nspawn [OPTIONS...] [PATH] [ARGUMENTS...]"). */
  usage: readonly string[];
  /** One paragraph: what the command does. */
  summary: string;
  /** Sections before the options (machinectl's "Machine Commands:"), each a title and its lines. */
  sections?: ReadonlyArray<{ title: string; lines: readonly string[] }>;
}

const COLUMN = 28;

/** One option as systemd's --help lists it: "  -D --directory=PATH       Root directory…". */
export function formatOption(
  d: Pick<OptionDef<unknown>, 'long' | 'short' | 'arg' | 'value' | 'help'>,
): string {
  const value = d.value ?? 'VALUE';
  const arg = d.arg === 'required' ? `=${value}` : d.arg === 'optional' ? `[=${value}]` : '';
  const shortOnly = d.arg === 'none' ? `  -${d.short}` : `  -${d.short} ${value}`;
  const left = d.long ? `  ${d.short ? `-${d.short} ` : '   '}--${d.long}${arg}` : shortOnly;
  const help = d.help ?? '';
  return left.length < COLUMN ? `${left.padEnd(COLUMN)}${help}` : `${left}\n${' '.repeat(COLUMN)}${help}`;
}

/** The whole --help text from the same table the parser uses. */
export function formatHelp(spec: HelpSpec, defs: readonly OptionDef<never>[]): string {
  const out: string[] = [...spec.usage, '', spec.summary, ''];
  for (const s of spec.sections ?? []) out.push(`${s.title}:`, ...s.lines.map((l) => `  ${l}`), '');
  out.push('Options:');
  out.push(formatOption({ long: 'help', short: 'h', arg: 'none', help: 'Show this help' }));
  out.push(formatOption({ long: 'version', arg: 'none', help: 'Show package version' }));
  for (const d of defs) if (d.help !== undefined) out.push(formatOption(d));
  return `${out.join('\n')}\n`;
}
