import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  addAddress,
  addRoute,
  closeQuietly,
  createLink,
  createNetworkNamespace,
  type NetlinkSocket,
  openRouteSocket,
  setLink,
} from '@sd/sys';

/**
 * The network the tests build, all of it in namespaces of their own (the
 * host's links, routes, nftables and sysctls are never touched):
 *
 *   "host" ns  sdnet-up 198.18.0.1/24 ──veth── sdnet-inet 198.18.0.2/24  "internet" ns
 *   (sd-nspawn runs here; default route via .2)   (a server; no route back to the pool)
 */

export const NSPAWN_CLI = fileURLToPath(new URL('../dist/sd-nspawn.cjs', import.meta.url));
export const NETWORKD_CLI = fileURLToPath(new URL('../../networkd-veth/dist/cli.js', import.meta.url));
export const HOST_UPLINK = '198.18.0.1';
export const INTERNET = '198.18.0.2';

// The "internet" server: HTTP on 8000 and UDP on 8001, both answering with the peer's address.
const SERVER = `
const http = require('node:http'), dgram = require('node:dgram');
http.createServer((q, r) => r.end(q.socket.remoteAddress)).listen(8000, '0.0.0.0', () => {
  const u = dgram.createSocket('udp4');
  u.on('message', (m, rinfo) => u.send(rinfo.address, rinfo.port, rinfo.address));
  u.bind(8001, '0.0.0.0', () => process.stdout.write('ready\\n'));
});`;

export class Topology {
  readonly hostNs: number;
  readonly inetNs: number;
  readonly host: NetlinkSocket;
  private readonly inet: NetlinkSocket;
  private server: ChildProcess | undefined;
  private readonly children = new Set<ChildProcess>();

  private constructor() {
    this.hostNs = createNetworkNamespace();
    this.inetNs = createNetworkNamespace();
    this.host = openRouteSocket(this.hostNs);
    this.inet = openRouteSocket(this.inetNs);
  }

  static async create(): Promise<Topology> {
    if (!existsSync(NSPAWN_CLI)) throw new Error(`${NSPAWN_CLI} is missing: run npm run build first`);
    const t = new Topology();
    try {
      await setLink(t.host, 1, { up: true });
      await setLink(t.inet, 1, { up: true });
      const up = await createLink(t.host, {
        name: 'sdnet-up',
        kind: 'veth',
        up: true,
        peer: { name: 'sdnet-inet', netns: { fd: t.inetNs } },
      });
      await addAddress(t.host, { index: up, address: HOST_UPLINK, prefixLength: 24 });
      await addRoute(t.host, { gateway: INTERNET });
      const inetLink = (await import('@sd/sys')).getLink;
      const peer = await inetLink(t.inet, 'sdnet-inet');
      await setLink(t.inet, peer!.index, { up: true });
      await addAddress(t.inet, { index: peer!.index, address: INTERNET, prefixLength: 24 });
      await t.startServer();
    } catch (e) {
      t.close();
      throw e;
    }
    return t;
  }

  private nsArgs(ns: number): string[] {
    return [`--net=/proc/${process.pid}/fd/${ns}`];
  }

  private startServer(): Promise<void> {
    const s = spawn('nsenter', [...this.nsArgs(this.inetNs), process.execPath, '-e', SERVER], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    this.server = s;
    return new Promise((resolve, reject) => {
      s.stdout!.once('data', () => resolve());
      s.once('exit', (c) => reject(new Error(`internet server exited (${c})`)));
    });
  }

  /** Runs a command in the host or internet namespace. */
  run(where: 'host' | 'inet', cmd: string, args: string[], timeout = 20_000) {
    const ns = where === 'host' ? this.hostNs : this.inetNs;
    const r = spawnSync('nsenter', [...this.nsArgs(ns), cmd, ...args], { encoding: 'utf8', timeout });
    return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  }

  /** sd-nspawn in the host namespace; resolves when it exits. */
  nspawn(
    args: string[],
    timeout = 60_000,
  ): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
    const child = this.nspawnChild(args);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`sd-nspawn ${args.join(' ')} timed out: ${stderr}`));
      }, timeout);
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, stdout, stderr });
      });
    });
  }

  /** A long-running process in the host or internet namespace (stopped by the test or by close()). */
  spawnIn(where: 'host' | 'inet', cmd: string, args: string[]): ChildProcess {
    const ns = where === 'host' ? this.hostNs : this.inetNs;
    const child = spawn('nsenter', [...this.nsArgs(ns), cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.add(child);
    child.on('exit', () => this.children.delete(child));
    return child;
  }

  /** A long-running sd-nspawn (stopped by the test or by close()). */
  nspawnChild(args: string[], env: NodeJS.ProcessEnv = process.env): ChildProcess {
    // nsenter execs node: the child's pid is sd-nspawn's.
    const child = spawn('nsenter', [...this.nsArgs(this.hostNs), process.execPath, NSPAWN_CLI, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env,
    });
    this.children.add(child);
    child.on('exit', () => this.children.delete(child));
    return child;
  }

  async waitFor<T>(
    what: string,
    fn: () => T | undefined | Promise<T | undefined>,
    timeout = 20_000,
  ): Promise<T> {
    const deadline = Date.now() + timeout;
    for (;;) {
      const v = await fn();
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** The container's first process: sd-nspawn's child (nsenter execs node, so the child's pid is sd-nspawn's). */
  containerPid(child: ChildProcess): number | undefined {
    const tasks = readdirSync(`/proc/${child.pid}/task`);
    for (const t of tasks) {
      const kids = readFileSync(`/proc/${child.pid}/task/${t}/children`, 'utf8').trim();
      if (kids) return Number(kids.split(' ')[0]);
    }
    return undefined;
  }

  /** Runs a command of the host's in a container's network namespace only. */
  inContainerNet(pid: number, cmd: string, args: string[], timeout = 20_000) {
    const r = spawnSync('nsenter', [`--net=/proc/${pid}/ns/net`, cmd, ...args], {
      encoding: 'utf8',
      timeout,
    });
    return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  }

  /** host0's global IPv4 address (with its prefix) in a running container, once it has one. */
  host0Address(child: ChildProcess, scope: 'global' | 'link' = 'global'): string | undefined {
    const pid = this.containerPid(child);
    if (!pid) return undefined;
    const out = this.inContainerNet(pid, 'ip', [
      '-4',
      '-o',
      'addr',
      'show',
      'dev',
      'host0',
      'scope',
      scope,
    ]).stdout;
    return /inet (\S+)/.exec(out)?.[1];
  }

  /** nftables tables of the host namespace (`nft` from outside, as a check). */
  nftTables(): string {
    return this.run('host', 'nft', ['list', 'tables']).stdout.trim();
  }

  async close(): Promise<void> {
    for (const c of this.children) c.kill('SIGKILL');
    await Promise.all(
      [...this.children].map(
        (c) => new Promise((r) => (c.exitCode !== null || c.signalCode ? r(null) : c.once('exit', r))),
      ),
    );
    this.server?.kill('SIGKILL');
    this.host.close();
    this.inet.close();
    // The namespaces, and every link in them, go with their last fd.
    closeQuietly(this.hostNs, this.inetNs);
  }
}
