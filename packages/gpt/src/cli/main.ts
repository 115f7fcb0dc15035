import {
  formatHelp,
  type OptionDef,
  packageVersion,
  parseCommandLine,
  parseJsonMode,
  UsageError,
} from '@sd/basic';
import { SdError, SyscallError } from '@sd/sys';
import { dissectImage } from '../dissect/dissect.js';
import { ImageError } from '../errors.js';
import { mountImage } from '../mount/mount.js';
import { umountImage } from '../mount/teardown.js';
import { formatTable, toJson } from './format.js';

/** sd-dissect: the only place of this package that prints and exits. */

/** Exit codes (sysexits.h where one fits). */
export const EXIT = {
  OK: 0,
  /** Mounting, unmounting or another operation failed. */
  FAILURE: 1,
  /** Bad command line (systemd's tools exit 1 for it, as for any failure). */
  USAGE: 1,
  /** The image is broken, hostile or not usable as asked (ImageError). */
  DATAERR: 65,
  /** The image cannot be opened. */
  NOINPUT: 66,
} as const;

interface Values {
  mount: boolean;
  umount: boolean;
  readOnly: boolean;
  mkdir: boolean;
  suid: boolean;
  json: 'pretty' | 'short' | 'off';
  legend: boolean;
}

const flag = (
  long: string,
  short: string | undefined,
  help: string,
  set: (v: Values) => void,
): OptionDef<Values> => ({
  long,
  arg: 'none',
  help,
  apply: set,
  ...(short ? { short } : {}),
});

export const OPTIONS: OptionDef<Values>[] = [
  flag('mount', 'm', 'Mount the image to the specified directory', (v) => {
    v.mount = true;
  }),
  flag('umount', 'u', 'Unmount the image from the specified directory', (v) => {
    v.umount = true;
  }),
  flag('read-only', 'r', 'Mount read-only', (v) => {
    v.readOnly = true;
  }),
  flag('mkdir', undefined, 'Make the directory before mounting, if missing', (v) => {
    v.mkdir = true;
  }),
  flag('suid', undefined, 'Honour set-user-ID bits in the image (mounts are nosuid otherwise)', (v) => {
    v.suid = true;
  }),
  {
    long: 'json',
    arg: 'required',
    value: 'pretty|short|off',
    help: 'Generate JSON output',
    apply: (v, a) => {
      v.json = parseJsonMode(a);
    },
  },
  flag('no-legend', undefined, 'Do not show the headers and notes', (v) => {
    v.legend = false;
  }),
];

const HELP = `${formatHelp(
  {
    usage: [
      'sd-dissect [OPTIONS...] IMAGE',
      'sd-dissect [OPTIONS...] --mount IMAGE PATH',
      'sd-dissect --umount PATH',
    ],
    summary:
      'Dissect a disk image (GPT, MBR or a bare file system) per the Discoverable\nPartitions Specification, and mount or unmount it. Device nodes in an image never work.',
  },
  OPTIONS as never,
)}
Exit status: 0 success, 1 failure or bad usage, 65 broken or unusable image,
66 image cannot be opened.
`;

export interface CliIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  isTty: boolean;
  env: NodeJS.ProcessEnv;
}

function exitCodeOf(e: unknown): number {
  if (e instanceof ImageError) return EXIT.DATAERR;
  if (e instanceof SyscallError && ['ENOENT', 'EACCES', 'EISDIR', 'ENOTDIR'].includes(e.code))
    return EXIT.NOINPUT;
  if (
    (e as NodeJS.ErrnoException)?.syscall === 'open' &&
    ['ENOENT', 'EACCES', 'EISDIR'].includes(String((e as NodeJS.ErrnoException).code))
  )
    return EXIT.NOINPUT;
  return EXIT.FAILURE;
}

/** Runs sd-dissect with `argv`; returns the exit status. */
export function main(argv: string[], io: CliIo): number {
  const values: Values = {
    mount: false,
    umount: false,
    readOnly: false,
    mkdir: false,
    suid: false,
    json: 'off',
    legend: true,
  };
  const usage = (msg: string) => {
    io.stderr(`sd-dissect: ${msg}\n`);
    return EXIT.USAGE;
  };
  let positionals: string[];
  try {
    const p = parseCommandLine(OPTIONS, argv, values, { permute: true });
    if (p.help) {
      io.stdout(HELP);
      return EXIT.OK;
    }
    if (p.version) {
      io.stdout(`${packageVersion(import.meta.url, 'sd-dissect')}\n`);
      return EXIT.OK;
    }
    positionals = p.positionals;
  } catch (e) {
    if (e instanceof UsageError) return usage(e.message);
    throw e;
  }
  const json = values.json;
  if (values.mount && values.umount) return usage('--mount and --umount cannot be combined');
  try {
    if (values.umount) {
      if (positionals.length !== 1) return usage('--umount needs exactly one argument: the directory');
      umountImage(positionals[0]!);
      return EXIT.OK;
    }
    if (values.mount) {
      if (positionals.length !== 2) return usage('--mount needs two arguments: the image and the directory');
      const m = mountImage(positionals[0]!, positionals[1]!, {
        readOnly: values.readOnly,
        mkdir: values.mkdir,
        // A setuid binary in an image someone handed us must not be a way to root here.
        nosuid: !values.suid,
      });
      for (const w of m.image.warnings) io.stderr(`Warning: ${w}\n`);
      m.keep();
      return EXIT.OK;
    }
    if (positionals.length !== 1) return usage('Expected exactly one argument: the image (see --help)');
    const img = dissectImage(positionals[0]!);
    if (json === 'pretty' || json === 'short') {
      io.stdout(`${JSON.stringify(toJson(img), null, json === 'pretty' ? '\t' : undefined)}\n`);
      return EXIT.OK;
    }
    for (const w of img.warnings) io.stderr(`Warning: ${w}\n`);
    const color = io.isTty && io.env.NO_COLOR === undefined;
    io.stdout(formatTable(img, { legend: values.legend, color }));
    return EXIT.OK;
  } catch (e) {
    if (!(e instanceof SdError) && !(e as NodeJS.ErrnoException)?.syscall) throw e;
    io.stderr(`sd-dissect: ${(e as Error).message}\n`);
    return exitCodeOf(e);
  }
}
