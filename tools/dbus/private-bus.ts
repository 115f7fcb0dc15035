import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

/**
 * A private dbus-daemon shaped like the system bus (system-bus.conf.in) on a
 * socket in a temporary directory: what tests run their daemons and clients
 * against, never the host's bus. Stopped by its pid.
 */

export interface PrivateBus {
  /** unix:path=… — pass as DBUS_SYSTEM_BUS_ADDRESS or busctl --address. */
  address: string;
  /** The socket path. */
  socket: string;
  pid: number;
  dir: string;
  /** The environment a client of this bus needs (DBUS_SYSTEM_BUS_ADDRESS set). */
  env: NodeJS.ProcessEnv;
  stop(): Promise<void>;
}

const TEMPLATE = fileURLToPath(new URL('./system-bus.conf.in', import.meta.url));

export function dbusDaemonAvailable(): boolean {
  return spawnSync('dbus-daemon', ['--version'], { stdio: 'ignore' }).status === 0;
}

export async function startPrivateBus(): Promise<PrivateBus> {
  const dir = mkdtempSync('/tmp/sd-bus.');
  chmodSync(dir, 0o755);
  const socket = join(dir, 'bus');
  const config = join(dir, 'bus.conf');
  writeFileSync(
    config,
    readFileSync(TEMPLATE, 'utf8').replaceAll('@SOCKET@', socket).replaceAll('@PIDFILE@', join(dir, 'pid')),
  );
  // --fork returns once the socket listens and the pid file is written.
  const r = spawnSync('dbus-daemon', [`--config-file=${config}`, '--fork', '--print-address=1'], {
    encoding: 'utf8',
  });
  if (r.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`dbus-daemon failed to start: ${r.stderr || r.error?.message}`);
  }
  const pid = Number(readFileSync(join(dir, 'pid'), 'utf8').trim());
  const address = `unix:path=${socket}`;
  return {
    address,
    socket,
    pid,
    dir,
    env: { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: address },
    async stop() {
      if (isOurs(pid, config)) {
        process.kill(pid, 'SIGTERM');
        for (let i = 0; i < 100 && existsSync(`/proc/${pid}`); i++) await sleep(20);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function isOurs(pid: number, config: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(`--config-file=${config}`);
  } catch {
    return false;
  }
}
