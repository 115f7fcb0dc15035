import { aarch64 } from './aarch64.js';
import type { SyscallTable } from './table.js';
import { x86_64 } from './x86_64.js';

export type { SyscallTable } from './table.js';
export { aarch64, x86_64 };

/** The AUDIT_ARCH value seccomp filters check, per architecture. */
export const AUDIT_ARCH = { x86_64: 0xc000003e, aarch64: 0xc00000b7 } as const;

export type Arch = 'x86_64' | 'aarch64';

export function hostArch(): Arch {
  if (process.arch === 'x64') return 'x86_64';
  if (process.arch === 'arm64') return 'aarch64';
  throw new Error(`sd supports x86_64 and aarch64, not ${process.arch}`);
}

/** System call numbers of the machine we run on. */
export const SYS: SyscallTable = hostArch() === 'x86_64' ? x86_64 : aarch64;
