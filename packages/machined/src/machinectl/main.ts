import { readFileSync } from 'node:fs';
import { writeFd } from '@sd/basic';
import { isatty } from '@sd/sys';
import { checkVerb, type Options, parseArgs, UsageError } from './args.js';
import { BusMachine1, LiteMachine1, type Machine1 } from './client.js';
import type { Verb, VerbContext } from './context.js';
import { useColor } from './format.js';
import * as images from './verbs-images.js';
import * as machines from './verbs-machines.js';
import * as transfers from './verbs-transfers.js';

/**
 * machinectl: parses argv, connects to org.freedesktop.machine1 and runs a
 * verb. Exit status as systemd's: 0 on success, 1 on any failure
 * (including bad usage).
 */

const VERB_TABLE: Record<string, Verb> = {
  list: machines.list,
  status: machines.status,
  show: machines.showVerb('machine'),
  login: machines.login,
  shell: machines.shell,
  poweroff: machines.poweroff,
  reboot: machines.reboot,
  terminate: machines.terminate,
  kill: machines.kill,
  stop: machines.stop,
  start: machines.start,
  bind: machines.bind,
  'copy-to': machines.copyVerb('To'),
  'copy-from': machines.copyVerb('From'),
  'list-images': images.listImages,
  'image-status': images.imageStatus,
  'show-image': machines.showVerb('image'),
  clone: images.clone,
  rename: images.rename,
  remove: images.remove,
  'read-only': images.readOnly,
  'set-limit': images.setLimit,
  clean: images.clean,
  'pull-tar': transfers.pullTar,
  'pull-raw': transfers.pullRaw,
  'import-tar': transfers.importTar,
  'import-raw': transfers.importRaw,
  'import-fs': transfers.importFs,
  'export-tar': transfers.exportTar,
  'export-raw': transfers.exportRaw,
  'list-transfers': transfers.listTransfers,
  'cancel-transfer': transfers.cancelTransfer,
};

export const HELP = `machinectl [OPTIONS...] COMMAND ...

Send control commands to or query the virtual machine and container
registration manager (sd-machined, org.freedesktop.machine1).

Machine Commands:
  list                        List running VMs and containers
  status NAME...              Show VM/container details
  show [NAME...]              Show properties of one or more VMs/containers
  start NAME...               Start container as a service (runs sd-nspawn)
  login [NAME]                Get a login prompt in a container or on the local host
  shell [[USER@]NAME [COMMAND...]]
                              Invoke a shell (or other command) in a container
                              or on the local host
  stop NAME...                Power off one or more containers
  poweroff NAME...            Power off one or more containers
  reboot NAME...              Reboot one or more containers
  terminate NAME...           Terminate one or more VMs/containers
  kill NAME...                Send signal to processes of a VM/container
  bind NAME PATH [PATH]       Bind mount a path from the host into a container
  copy-to NAME PATH [PATH]    Copy files from the host to a container
  copy-from NAME PATH [PATH]  Copy files from a container to the host

Image Commands:
  list-images                 Show available container and VM images
  image-status [NAME...]      Show image details
  show-image [NAME...]        Show properties of image
  clone NAME NAME             Clone an image
  rename NAME NAME            Rename an image
  read-only NAME [BOOL]       Mark or unmark image read-only
  remove NAME...              Remove an image
  set-limit [NAME] BYTES      Set image or pool size limit (disk quota)
  clean                       Remove hidden (or all) images

Image Transfer Commands (through sd-importd, org.freedesktop.import1):
  pull-tar URL [NAME]         Download a TAR container image
  pull-raw URL [NAME]         Download a RAW container or VM image
  import-tar FILE [NAME]      Import a local TAR container image
  import-raw FILE [NAME]      Import a local RAW container or VM image
  import-fs DIRECTORY [NAME]  Import a local directory container image
  export-tar NAME [FILE]      Export a TAR container image locally
  export-raw NAME [FILE]      Export a RAW container or VM image locally
  list-transfers              Show list of downloads in progress
  cancel-transfer             Cancel a download

Options:
  -h --help                   Show this help
     --version                Show package version
     --no-pager               Do not pipe output into a pager
     --no-legend              Do not show the headers and footers
     --no-ask-password        Do not ask for system passwords
  -p --property=NAME          Show only properties by this name
  -P NAME                     Equivalent to --value --property=NAME
  -a --all                    Show all properties, including empty ones
     --value                  When showing properties, only print the value
  -l --full                   Do not ellipsize output
     --kill-whom=WHOM         Whom to send signal to
  -s --signal=SIGNAL          Which signal to send
     --uid=USER               Specify user ID to invoke shell as
  -E --setenv=VAR[=VALUE]     Add an environment variable for shell
     --read-only              Create read-only bind mount or clone
     --mkdir                  Create directory before bind mounting, if missing
     --force                  Replace target file when copying, if necessary
                              (and an existing image on import/pull)
     --verify=MODE            Verification mode for downloaded images (no, checksum, signature)
     --format=FORMAT          Compression of exported images (uncompressed, xz, gzip, bzip2, zstd)
     --keep-download=BOOL     Keep a pristine read-only copy of a pulled download
  -q --quiet                  Suppress output
     --json=pretty|short|off  Generate JSON output

See the machinectl(1) man page of systemd for details.
`;

export interface RunOptions {
  /** The bus; by default a connection to $DBUS_SYSTEM_BUS_ADDRESS or the system bus. */
  connect?: () => Promise<Machine1>;
  out?: (s: string) => void;
  err?: (s: string) => void;
  isTTY?: boolean;
}

function version(): string {
  for (const rel of ['../../package.json', '../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as {
        name: string;
        version: string;
      };
      if (pkg.name === '@sd/machined') return `${pkg.name} ${pkg.version}`;
    } catch {}
  }
  return '@sd/machined';
}

/** Runs machinectl with `argv`; resolves to the exit status. Never exits the process itself. */
export async function runMachinectl(argv: string[], run: RunOptions = {}): Promise<number> {
  const out = run.out ?? ((s: string) => writeFd(1, s));
  const err = run.err ?? ((s: string) => writeFd(2, s));
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs(argv);
    if (parsed.options.help) {
      out(HELP);
      return 0;
    }
    if (parsed.options.version) {
      out(`${version()}\n`);
      return 0;
    }
    checkVerb(parsed);
  } catch (e) {
    if (e instanceof UsageError) {
      err(`machinectl: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
  let bus: Machine1;
  try {
    // login and shell get a pty fd in the reply: dbus-next, which can take fds; the rest the small client.
    const fds = parsed.verb === 'login' || parsed.verb === 'shell';
    bus = await (run.connect ?? (() => (fds ? BusMachine1.connect() : LiteMachine1.connect())))();
  } catch (e) {
    err(`Failed to connect to bus: ${(e as Error).message}\n`);
    return 1;
  }
  const ctx: VerbContext = {
    bus,
    options: parsed.options as Options,
    out,
    err,
    color: useColor(run.isTTY ?? isatty(1)),
    stdinFd: 0,
    stdoutFd: 1,
  };
  try {
    return await VERB_TABLE[parsed.verb]!(ctx, parsed.args);
  } catch (e) {
    err(`${e instanceof UsageError ? 'machinectl: ' : ''}${(e as Error).message}\n`);
    return 1;
  } finally {
    bus.close();
  }
}
