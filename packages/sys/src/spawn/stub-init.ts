import { type Arch, hostArch } from '../arch/index.js';
import { AT } from '../constants.js';
import { InvalidArgumentError, SyscallError } from '../errors.js';
import { closeQuietly, fcntl, writeAll } from '../fd/fd.js';
import { koffi, lazyFunc } from '../ffi/libc.js';
import { type SpawnProgram, type StepOptions, StringArray } from './program.js';
import { stubInits } from './stub-init.generated.js';

/**
 * The stub init of `--as-pid2` (native/stub-init-<arch>.S): a tiny static
 * executable that runs as PID 1 of a container, forks the payload as PID 2,
 * forwards signals to it, reaps orphans and exits with the payload's status
 * (its code, or 128 + the signal that killed it). It is exec'd from a sealed
 * memfd, so nothing is written into the container's tree.
 *
 *   sd-stub-init PATH ARGV0 [ARG...]
 */

const MFD_CLOEXEC = 0x1;
const MFD_ALLOW_SEALING = 0x2;
/** Linux 6.3+: executable even when vm.memfd_noexec asks otherwise. EINVAL before. */
const MFD_EXEC = 0x10;
const F_ADD_SEALS = 1033;
const F_SEAL_SEAL = 0x1;
const F_SEAL_SHRINK = 0x2;
const F_SEAL_GROW = 0x4;
const F_SEAL_WRITE = 0x8;
const EINVAL = 22;

/** The name the stub runs under (its argv[0]). */
export const STUB_INIT_NAME = 'sd-stub-init';

const c = {
  memfdCreate: lazyFunc('int memfd_create(const char *name, unsigned int flags)'),
};

/** The stub init's ELF executable for an architecture (the host's by default). */
export function stubInitBytes(arch: Arch = hostArch()): Buffer {
  return Buffer.from(stubInits[arch], 'base64');
}

/**
 * A memfd holding the stub init for the host, sealed against any change. It
 * is close-on-exec: execveat(fd, "", ..., AT_EMPTY_PATH) opens the file before
 * the kernel closes close-on-exec fds, which works for an ELF executable (not
 * for a script). Spawn the program that execs it while the fd is open, then
 * close it.
 */
export function createStubInitMemfd(): number {
  let fd = c.memfdCreate(STUB_INIT_NAME, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC) as number;
  if (fd < 0 && koffi.errno() === EINVAL)
    fd = c.memfdCreate(STUB_INIT_NAME, MFD_CLOEXEC | MFD_ALLOW_SEALING) as number;
  if (fd < 0) throw new SyscallError('memfd_create', koffi.errno());
  try {
    writeAll(fd, stubInitBytes());
    fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
    return fd;
  } catch (e) {
    closeQuietly(fd);
    throw e;
  }
}

/**
 * Appends the execveat of the stub init: it runs `path` with `argv` (argv[0]
 * included, kept as given) and `envp` as its child, PID 2 in a new PID
 * namespace. `path` is not searched in $PATH: resolve a bare command first.
 * Put it where execve would go, after SpawnProgram.resetSignals().
 */
export function execStubInit(
  program: SpawnProgram,
  memfd: number,
  path: string,
  argv: readonly string[],
  envp: readonly string[],
  o?: StepOptions,
): SpawnProgram {
  if (argv.length === 0) throw new InvalidArgumentError('execStubInit: argv needs at least argv[0]');
  program.syscall(
    'execveat',
    program.sys.execveat,
    [memfd, '', new StringArray([STUB_INIT_NAME, path, ...argv]), new StringArray(envp), AT.EMPTY_PATH],
    o,
  );
  return program;
}
