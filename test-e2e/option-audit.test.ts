import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { OptionDef } from '@sd/basic';
import { describe, expect, it } from 'vitest';
import { OPTIONS as DISSECT_OPTIONS } from '../packages/gpt/src/cli/main.js';
import { IMPORTCTL_OPTIONS } from '../packages/importd/src/cli/importctl.js';
import { IMPORTD_OPTIONS } from '../packages/importd/src/cli/importd.js';
import { MACHINED_OPTIONS } from '../packages/machined/src/daemon/cli-options.js';
import { OPTIONS as MACHINECTL_OPTIONS } from '../packages/machined/src/machinectl/args.js';
import { NETWORKD_VETH_OPTIONS } from '../packages/networkd-veth/src/cli-options.js';
import { OPTION_TABLE as NSPAWN_OPTIONS } from '../packages/nspawn/src/settings/argv.js';

/**
 * Issue 14: an option either works or is refused. Every entry of every CLI's
 * option table is either made with refusedOption (and then running the CLI
 * with it exits 1 with one line naming it), or listed below with the test
 * that shows its effect (that file must use the option). A new option that
 * is neither fails here, and so does a listed one that is gone.
 */

const repo = join(import.meta.dirname, '..');
type Table = readonly OptionDef<never>[];

interface Cli {
  table: Table;
  /** Option (`--long`, or `-s` for a short-only one) → the test file showing it work. */
  implemented: Record<string, string>;
}

const E2E = 'test-e2e';
const NSPAWN_NET = 'packages/nspawn/test/network.test.ts';
const MCTL_UNIT = 'packages/machined/src/machinectl/machinectl.test.ts';
const MCTL_OPTS = MCTL_UNIT;
const IMPORTD_DAEMON = 'packages/importd/test/daemon.test.ts';
const IMPORTD_KEEP = 'packages/importd/test/keep.test.ts';
const EFFECTS = `${E2E}/option-effects.test.ts`;

export const AUDIT: Record<string, Cli> = {
  'sd-nspawn': {
    table: NSPAWN_OPTIONS as Table,
    implemented: {
      '--directory': `${E2E}/nspawn.test.ts`,
      '--image': `${E2E}/image.test.ts`,
      '--machine': `${E2E}/locate.test.ts`,
      '--hostname': `${E2E}/options.test.ts`,
      '--uuid': `${E2E}/options.test.ts`,
      '--user': `${E2E}/options.test.ts`,
      '--chdir': `${E2E}/options.test.ts`,
      '--setenv': `${E2E}/nspawn.test.ts`,
      '--boot': `${E2E}/boot.test.ts`,
      '--as-pid2': `${E2E}/signals.test.ts`,
      '--console': `${E2E}/console.test.ts`,
      '--pipe': `${E2E}/console-default.test.ts`,
      '--quiet': `${E2E}/nspawn.test.ts`,
      '--read-only': `${E2E}/mounts.test.ts`,
      '--ephemeral': `${E2E}/ephemeral.test.ts`,
      '--template': `${E2E}/ephemeral.test.ts`,
      '--volatile': `${E2E}/nspawn.test.ts`,
      '--private-users': `${E2E}/nspawn.test.ts`,
      '--private-users-ownership': `${E2E}/userns-ownership.test.ts`,
      '--private-users-chown': `${E2E}/userns-ownership.test.ts`,
      '-U': `${E2E}/userns-range.test.ts`,
      '--private-network': `${E2E}/nspawn.test.ts`,
      '--network-veth': NSPAWN_NET,
      '--network-veth-extra': NSPAWN_NET,
      '--network-bridge': NSPAWN_NET,
      '--network-zone': NSPAWN_NET,
      '--network-interface': NSPAWN_NET,
      '--network-macvlan': NSPAWN_NET,
      '--network-ipvlan': NSPAWN_NET,
      '--network-namespace-path': NSPAWN_NET,
      '--port': NSPAWN_NET,
      '--register': `${E2E}/escape-seccomp.test.ts`,
      '--kill-signal': `${E2E}/signals.test.ts`,
      '--capability': EFFECTS,
      '--drop-capability': `${E2E}/untrusted-settings.test.ts`,
      '--no-new-privileges': EFFECTS,
      '--system-call-filter': `${E2E}/escape-seccomp.test.ts`,
      '--resolv-conf': `${E2E}/options.test.ts`,
      '--timezone': `${E2E}/options.test.ts`,
      '--notify-ready': `${E2E}/notify.test.ts`,
      '--bind': `${E2E}/mounts.test.ts`,
      '--bind-ro': `${E2E}/mounts.test.ts`,
      '--tmpfs': `${E2E}/mounts.test.ts`,
      '--overlay': `${E2E}/mounts.test.ts`,
      '--overlay-ro': `${E2E}/mounts.test.ts`,
      '--inaccessible': `${E2E}/mounts.test.ts`,
      '--settings': `${E2E}/untrusted-settings.test.ts`,
    },
  },
  machinectl: {
    table: MACHINECTL_OPTIONS as Table,
    implemented: {
      '--no-pager': MCTL_OPTS,
      '--no-legend': MCTL_UNIT,
      '--no-ask-password': MCTL_OPTS,
      '--property': MCTL_UNIT,
      '-P': MCTL_UNIT,
      '--all': MCTL_UNIT,
      '--value': 'packages/machined/test/machinectl-ours.test.ts',
      '--full': MCTL_OPTS,
      '--kill-whom': 'packages/machined/test/machinectl-ours.test.ts',
      '--signal': MCTL_UNIT,
      '--uid': MCTL_OPTS,
      '--setenv': MCTL_OPTS,
      '--read-only': IMPORTD_DAEMON,
      '--mkdir': MCTL_UNIT,
      '--force': MCTL_UNIT,
      '--quiet': MCTL_OPTS,
      '--verify': IMPORTD_DAEMON,
      '--format': IMPORTD_DAEMON,
      '--keep-download': IMPORTD_KEEP,
      '--json': MCTL_OPTS,
      '-j': MCTL_OPTS,
    },
  },
  'sd-machined': {
    table: MACHINED_OPTIONS as Table,
    implemented: {
      '--bus-address': EFFECTS,
      '--root': EFFECTS,
      '--state-dir': EFFECTS,
      '--terminate-timeout': 'packages/machined/test/helpers.ts',
      '--nspawn': EFFECTS,
    },
  },
  'sd-dissect': {
    table: DISSECT_OPTIONS as Table,
    implemented: {
      '--mount': 'packages/gpt/test/mount.test.ts',
      '--umount': 'packages/gpt/test/mount.test.ts',
      '--read-only': `${E2E}/hostile-image.test.ts`,
      '--mkdir': 'packages/gpt/test/mount.test.ts',
      '--suid': `${E2E}/hostile-image.test.ts`,
      '--json': 'packages/gpt/src/cli.test.ts',
      '--no-legend': 'packages/gpt/src/cli.test.ts',
    },
  },
  'sd-importd': {
    table: IMPORTD_OPTIONS as Table,
    implemented: {
      '--bus-address': EFFECTS,
      // Every daemon test (daemon, keep, boot) starts sd-importd with --root through this helper.
      '--root': 'packages/importd/test/importd-proc.ts',
      // The CLI hands the files straight to Importd's `keyrings`, which the pull test verifies signatures with.
      '--keyring': 'packages/importd/test/pull.test.ts',
    },
  },
  importctl: {
    table: IMPORTCTL_OPTIONS as Table,
    implemented: {
      ...Object.fromEntries(
        [
          '--json',
          '--no-legend',
          '--no-pager',
          '-j',
          '--no-ask-password',
          '--read-only',
          '--quiet',
          '--verify',
          '--format',
          '--force',
          '--class',
          '-m',
          '--system',
        ].map((o) => [o, IMPORTD_DAEMON]),
      ),
      '--keep-download': IMPORTD_KEEP,
      '-N': IMPORTD_KEEP,
    },
  },
  'sd-networkd-veth': {
    table: NETWORKD_VETH_OPTIONS as Table,
    implemented: {
      '--once': 'packages/networkd-veth/test/daemon.test.ts',
      '--lock': 'packages/networkd-veth/test/daemon.test.ts',
    },
  },
  // sd-llmnr has an empty table: --help and --version only (cli-contract.test.ts).
};

/** How a test would spell an option, or what stands for it (the library field a CLI option maps onto). */
const MENTIONS: Record<string, string> = { '--keyring': 'keyrings: [keyring]' };

/** Each CLI's entry point, from its package's bin field (as the packed install runs it). */
const bins = new Map(
  readdirSync(join(repo, 'packages')).flatMap((p) => {
    const m = JSON.parse(readFileSync(join(repo, 'packages', p, 'package.json'), 'utf8')) as {
      bin?: Record<string, string>;
    };
    return Object.entries(m.bin ?? {}).map(([n, rel]) => [n, join(repo, 'packages', p, rel)] as const);
  }),
);

const keyOf = (d: OptionDef<never>) => (d.long ? `--${d.long}` : `-${d.short}`);
const reEscape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe.each(Object.entries(AUDIT))('%s', (name, cli) => {
  const keys = cli.table.map(keyOf);

  it('every option is refused or has a named test that uses it', () => {
    for (const d of cli.table) {
      const key = keyOf(d);
      if (d.refused !== undefined) {
        expect(cli.implemented[key], `${name} ${key} is refused, yet listed as implemented`).toBeUndefined();
        continue;
      }
      const file = cli.implemented[key];
      expect(file, `${name} ${key}: neither refused nor listed with a test`).toBeDefined();
      expect(existsSync(join(repo, file as string)), `${name} ${key}: ${file} is missing`).toBe(true);
      const text = readFileSync(join(repo, file as string), 'utf8');
      const forms = [d.long && `--${d.long}`, d.short && `-${d.short}`].filter(Boolean) as string[];
      const uses =
        MENTIONS[key] !== undefined
          ? text.includes(MENTIONS[key])
          : new RegExp(`['"\`](${forms.map(escape).join('|')})(['"\`=])`).test(text);
      expect(uses, `${name} ${key}: ${file} does not use it`).toBe(true);
    }
  });

  it('lists no option the table does not have', () => {
    for (const key of Object.keys(cli.implemented)) expect(keys, `${name} ${key}`).toContain(key);
  });

  const refused = cli.table.filter((d) => d.refused !== undefined);
  it.skipIf(refused.length === 0)('a refused option exits 1 with one line naming it', () => {
    for (const d of refused) {
      for (const form of [d.long && `--${d.long}`, d.short && `-${d.short}`].filter(Boolean) as string[]) {
        const args = d.arg === 'required' ? [form, 'cli-audit-value'] : [form];
        const r = spawnSync(process.execPath, [bins.get(name) as string, ...args], {
          encoding: 'utf8',
          timeout: 30_000,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        expect(r.stdout, `${name} ${form}`).toBe('');
        expect(r.stderr, `${name} ${form}`).toMatch(
          new RegExp(
            `^${reEscape(name)}: [^\\n]*${reEscape(form)}[^\\n]*${reEscape(d.refused as string)}\\n$`,
          ),
        );
        expect(r.status, `${name} ${form}`).toBe(1);
      }
    }
  });
});

it('every CLI with options is audited', () => {
  const bins = [
    'sd-nspawn',
    'machinectl',
    'sd-machined',
    'sd-dissect',
    'sd-importd',
    'importctl',
    'sd-networkd-veth',
  ];
  expect(Object.keys(AUDIT).sort()).toEqual(bins.sort());
});

it('importctl refuses the values and verbs it cannot honour, by name', () => {
  const cases: Array<[string[], RegExp]> = [
    [['--class=sysext', 'list-transfers'], /--class=sysext: only machine images/],
    [['pull-oci', 'docker.io/library/debian'], /pull-oci: pulling OCI images is not supported/],
    [['list-images'], /list-images: import1 has no ListImages here/],
  ];
  for (const [args, message] of cases) {
    const r = spawnSync(process.execPath, [bins.get('importctl') as string, ...args], {
      encoding: 'utf8',
      timeout: 30_000,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    expect(r.stderr, args.join(' ')).toMatch(new RegExp(`^importctl: [^\\n]*${message.source}[^\\n]*\\n$`));
    expect(r.status, args.join(' ')).toBe(1);
  }
});
