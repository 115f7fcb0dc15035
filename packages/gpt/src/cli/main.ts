import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
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
  /** Bad command line. */
  USAGE: 2,
  /** The image is broken, hostile or not usable as asked (ImageError). */
  DATAERR: 65,
  /** The image cannot be opened. */
  NOINPUT: 66,
} as const;

const HELP = `sd-dissect [OPTIONS...] IMAGE
sd-dissect [OPTIONS...] --mount IMAGE PATH
sd-dissect --umount PATH

Dissect a disk image (GPT, MBR or a bare file system) per the Discoverable
Partitions Specification, and mount or unmount it.

  -h --help             Show this help
     --version          Show the package version
  -m --mount            Mount the image to the specified directory
  -u --umount           Unmount the image from the specified directory
  -r --read-only        Mount read-only
     --mkdir            Make the directory before mounting, if missing
     --suid             Honour set-user-ID and set-group-ID bits in the image
                        (mounts are nosuid otherwise; device nodes never work)
     --json=pretty|short|off
                        Generate JSON output
     --no-legend        Do not show the headers and notes

Exit status: 0 success, 1 failure, 2 bad usage, 65 broken or unusable image,
66 image cannot be opened.
`;

export interface CliIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  isTty: boolean;
  env: NodeJS.ProcessEnv;
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    name: string;
    version: string;
  };
  return `${pkg.name} ${pkg.version}`;
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
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
        mount: { type: 'boolean', short: 'm' },
        umount: { type: 'boolean', short: 'u' },
        'read-only': { type: 'boolean', short: 'r' },
        mkdir: { type: 'boolean' },
        suid: { type: 'boolean' },
        json: { type: 'string' },
        'no-legend': { type: 'boolean' },
      },
    }));
  } catch (e) {
    io.stderr(`sd-dissect: ${(e as Error).message}\n`);
    return EXIT.USAGE;
  }
  if (values.help) {
    io.stdout(HELP);
    return EXIT.OK;
  }
  if (values.version) {
    io.stdout(`${version()}\n`);
    return EXIT.OK;
  }
  const usage = (msg: string) => {
    io.stderr(`sd-dissect: ${msg}\n`);
    return EXIT.USAGE;
  };
  const json = values.json as string | undefined;
  if (json !== undefined && !['pretty', 'short', 'off'].includes(json)) {
    return usage(`Unknown --json= mode '${json}': expected pretty, short or off`);
  }
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
        readOnly: values['read-only'] === true,
        mkdir: values.mkdir === true,
        // A setuid binary in an image someone handed us must not be a way to root here.
        nosuid: values.suid !== true,
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
    io.stdout(formatTable(img, { legend: values['no-legend'] !== true, color }));
    return EXIT.OK;
  } catch (e) {
    if (!(e instanceof SdError) && !(e as NodeJS.ErrnoException)?.syscall) throw e;
    io.stderr(`sd-dissect: ${(e as Error).message}\n`);
    return exitCodeOf(e);
  }
}
