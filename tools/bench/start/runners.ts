import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type ExternalOptions, elapsedMs, external, type Runner } from '../lib/runners.js';

/**
 * The start benchmark's own contenders: sd-nspawn as a CLI (a fresh node
 * each run) and as a library call from this running process.
 */

/** sd-nspawn's bin (the code-cache launcher of dist/cli.cjs). */
export const NSPAWN_CLI = fileURLToPath(
  new URL('../../../packages/nspawn/dist/sd-nspawn.cjs', import.meta.url),
);

/** The arguments both of ours get for /bin/true, as systemd-nspawn's minus what it alone needs. */
export const startArgs = (rootfs: string): string[] => ['-q', '-D', rootfs, '--console=pipe', '/bin/true'];

export function cliRunner(args: () => string[], options: ExternalOptions & { name?: string } = {}): Runner {
  return external(
    options.name ?? 'sd-nspawn CLI',
    `node ${NSPAWN_CLI.replace(`${process.cwd()}/`, '')}: Node start + everything below`,
    process.execPath,
    () => [NSPAWN_CLI, ...args()],
    options,
  );
}

interface NspawnModule {
  runContainer(settings: unknown): Promise<{ code: number | null; signal: number | null }>;
  parseArgv(argv: string[]): { settings: unknown };
}

/**
 * @sd/nspawn as this process resolves it: dist by default, src under
 * `tsx --conditions=sd-source`. Says which, or why it cannot.
 */
export async function loadNspawn(): Promise<{ mod: NspawnModule; from: string }> {
  let from: string;
  try {
    from = fileURLToPath(import.meta.resolve('@sd/nspawn'));
  } catch (e) {
    throw new Error(`cannot resolve @sd/nspawn: ${(e as Error).message}`);
  }
  if (!existsSync(from)) {
    throw new Error(
      `${from} is missing: run \`npm run build\` first (or run this with \`npx tsx --conditions=sd-source\`)`,
    );
  }
  const mod = (await import('@sd/nspawn')) as unknown as NspawnModule;
  return { mod, from: from.replace(`${process.cwd()}/`, '') };
}

export function libraryRunner(nspawn: NspawnModule, from: string, rootfs: string): Runner {
  return {
    name: 'sd-nspawn library',
    note: `runContainer(parseArgv([...]).settings) from ${from}, in this process`,
    async run() {
      const start = process.hrtime.bigint();
      const status = await nspawn.runContainer(nspawn.parseArgv(startArgs(rootfs)).settings);
      const ms = elapsedMs(start);
      if (status.code !== 0)
        throw new Error(`/bin/true ended with ${status.code ?? `signal ${status.signal}`}`);
      return ms;
    },
  };
}

/**
 * The cached Debian tree of tools/debian-tree/build.sh, if a build of it
 * finished (its stamp is there and it has systemd); else why not.
 */
export function debianTree(): { tree?: string; why?: string } {
  const cache = process.env.SD_TEST_CACHE || '/var/cache/sd-test';
  const tree = `${cache}/debian-bookworm`;
  if (!existsSync(fileURLToPath(new URL('../../debian-tree/build.sh', import.meta.url))))
    return { why: 'tools/debian-tree/build.sh does not exist yet' };
  if (!existsSync(`${tree}.stamp`) || !existsSync(`${tree}/usr/lib/systemd/systemd`))
    return { why: `no finished tree at ${tree} (run tools/debian-tree/build.sh to build it)` };
  const stamp = readFileSync(`${tree}.stamp`, 'utf8').trim();
  return { tree, why: stamp };
}
