import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

// Kernel ABI lives in @sd/sys alone (ARCHITECTURE.md §1): no package types
// errno numbers or packs netlink messages by hand; they import ERRNO and
// the encoders. A line here names the file and line that broke the rule.
const repo = join(import.meta.dirname, '..', '..');

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (p.endsWith('.ts') && !p.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const outsideSys = readdirSync(join(repo, 'packages'))
  .filter((p) => p !== 'sys')
  .flatMap((p) => sources(join(repo, 'packages', p, 'src')));

const RULES: Array<[string, RegExp]> = [
  [
    'an errno number typed again (use ERRNO from @sd/sys)',
    /\bconst E[A-Z0-9]{2,} = \d+|errno\)? ?[!=]== ?\d+\b|\b\d+ \/\* ?E[A-Z0-9]+ ?\*\//,
  ],
  [
    'a netlink message packed by hand (use the @sd/sys encoders)',
    /write(U)?Int(8|16|32)(LE|BE)?\(.*\/\/ *(nlmsg|RTM_|NLM_F|AF_NETLINK|ifi_|IFLA_|IFA_|RTA_)/,
  ],
];

describe('kernel ABI only in @sd/sys', () => {
  it.each(RULES)('no package outside sys has %s', (_what, re) => {
    const hits: string[] = [];
    for (const file of outsideSys) {
      readFileSync(file, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          if (re.test(line)) hits.push(`${relative(repo, file)}:${i + 1}: ${line.trim()}`);
        });
    }
    expect(hits).toEqual([]);
  });
});
