import { readFileSync } from 'node:fs';
import { closeQuietly, InvalidArgumentError, LOCK, O, open, SdError, tryFlock } from '@sd/sys';
import { formatSubnet, parseIPv4, type Subnet } from '../pool/ipv4.js';
import { Nft, NftError } from './libnftables.js';

/**
 * Our one nftables table, `ip io.sd.nat` (systemd's is io.systemd.nat):
 * masquerading of the pool subnets and --port forwards, for packets that
 * come in (prerouting) and for connections the host makes to one of its own
 * addresses (output). The rules are fixed; containers add and remove set
 * and map elements, each tagged with a comment naming its owner, so that
 * the elements of a killed owner can be found and removed later, and the
 * table goes when its last element goes.
 */

export const NAT_TABLE = 'io.sd.nat';
const T = `ip ${NAT_TABLE}`;

const SKELETON = [
  `add table ${T}`,
  `add set ${T} masq_saddr { type ipv4_addr; flags interval; }`,
  `add map ${T} map_port_ipport { type inet_proto . inet_service : ipv4_addr . inet_service; }`,
  `add chain ${T} prerouting { type nat hook prerouting priority dstnat + 1; policy accept; }`,
  `add chain ${T} output { type nat hook output priority -99; policy accept; }`,
  `add chain ${T} postrouting { type nat hook postrouting priority srcnat + 1; policy accept; }`,
];
const RULES = [
  `add rule ${T} prerouting fib daddr type local dnat ip to meta l4proto . th dport map @map_port_ipport`,
  // Loopback destinations stay local: the kernel would drop them on the way out (no route_localnet).
  `add rule ${T} output ip daddr != 127.0.0.0/8 oif "lo" dnat ip to meta l4proto . th dport map @map_port_ipport`,
  `add rule ${T} postrouting ip saddr @masq_saddr masquerade`,
];

export interface PortForward {
  protocol: 'tcp' | 'udp';
  hostPort: number;
  containerPort: number;
}

/** Who an element belongs to: a process (pid + start time, so a reused pid is not mistaken) or a link. */
export type Owner = { pid: number; start: string; machine: string } | { link: string };

export function ownerComment(o: Owner): string {
  return 'pid' in o ? `sd pid=${o.pid} start=${o.start} machine=${o.machine}` : `sd link=${o.link}`;
}

export function parseOwnerComment(c: string): Owner | undefined {
  let m = /^sd pid=(\d+) start=(\d+) machine=(\S+)$/.exec(c);
  if (m) return { pid: Number(m[1]), start: m[2]!, machine: m[3]! };
  m = /^sd link=(\S+)$/.exec(c);
  return m ? { link: m[1]! } : undefined;
}

/** The start time of a process (field 22 of /proc/PID/stat), or undefined when it is gone. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

export function selfOwner(machine: string): Owner {
  return { pid: process.pid, start: processStartTime(process.pid) ?? '0', machine };
}

function comment(o: Owner): string {
  const c = ownerComment(o);
  // Machine and link names are validated upstream; this keeps the quoting sound anyway.
  if (!/^[\x20-\x7e]+$/.test(c) || c.includes('"') || c.length > 128)
    throw new InvalidArgumentError(`Unusable owner for an nftables element: ${JSON.stringify(c)}`);
  return c;
}

function checkPort(p: number): void {
  if (!Number.isInteger(p) || p < 1 || p > 65535) throw new InvalidArgumentError(`Invalid port: ${p}`);
}

interface Element {
  key: string;
  owner?: Owner;
}

export class NatTable {
  private readonly nft: Nft;

  private readonly lockPath: string | undefined;

  /** `lockPath`: a file whose lock serialises all changes to the table (put it in a runtime directory). */
  constructor(options: { netnsFd?: number; lockPath?: string } = {}) {
    this.lockPath = options.lockPath;
    // One context (nft_ctx_new costs ~10 ms): JSON output is switched on per listing.
    this.nft = new Nft({ netnsFd: options.netnsFd });
  }

  close(): void {
    this.nft.close();
  }

  /** Whether our table exists in this namespace. */
  exists(): boolean {
    return this.tables().includes(NAT_TABLE);
  }

  private tables(): string[] {
    const out = JSON.parse(this.nft.run('list tables ip', { json: true })) as {
      nftables: Array<{ table?: { name: string } }>;
    };
    return out.nftables.flatMap((x) => (x.table ? [x.table.name] : []));
  }

  /**
   * Adds elements, making the table in the same transaction: the skeleton
   * is idempotent and the chains are flushed and refilled, so two starts at
   * once cannot end with the rules twice.
   */
  private add(lines: string[]): void {
    const flush = ['prerouting', 'output', 'postrouting'].map((c) => `flush chain ${T} ${c}`);
    this.withLock(() => this.nft.run([...SKELETON, ...flush, ...RULES, ...lines].join('\n')));
  }

  /** Serialises changes with other processes (a removal must not drop the table under a new element). */
  private withLock<R>(fn: () => R): R {
    if (this.lockPath === undefined) return fn();
    const fd = open(this.lockPath, O.RDWR | O.CREAT | O.CLOEXEC, 0o600);
    try {
      const deadline = Date.now() + 10_000;
      while (!tryFlock(fd, LOCK.EX, this.lockPath)) {
        if (Date.now() > deadline)
          throw new SdError('ETIMEDOUT', `Timed out waiting for the lock ${this.lockPath}`);
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
      }
      return fn();
    } finally {
      closeQuietly(fd);
    }
  }

  addMasquerade(subnet: Subnet, owner: Owner): void {
    this.add([`add element ${T} masq_saddr { ${formatSubnet(subnet)} comment "${comment(owner)}" }`]);
  }

  addPortForward(f: PortForward, containerAddress: string, owner: Owner): void {
    checkPort(f.hostPort);
    checkPort(f.containerPort);
    if (f.protocol !== 'tcp' && f.protocol !== 'udp')
      throw new InvalidArgumentError(`Invalid protocol: ${f.protocol}`);
    parseIPv4(containerAddress);
    this.add([
      `add element ${T} map_port_ipport { ${f.protocol} . ${f.hostPort} comment "${comment(owner)}" : ${containerAddress} . ${f.containerPort} }`,
    ]);
  }

  /** Every element with its owner. */
  elements(): { masq: Element[]; ports: Element[] } {
    const { masq, ports } = this.contents();
    return { masq, ports };
  }

  /** The elements, and whether the table is there at all. */
  private contents(): { exists: boolean; masq: Element[]; ports: Element[] } {
    if (!this.exists()) return { exists: false, masq: [], ports: [] };
    const out = JSON.parse(this.nft.run(`list table ${T}`, { json: true })) as {
      nftables: Array<Record<string, unknown>>;
    };
    const masq: Element[] = [];
    const ports: Element[] = [];
    for (const item of out.nftables) {
      const set = (item.set ?? item.map) as { name: string; elem?: unknown[] } | undefined;
      if (!set?.elem) continue;
      for (const e of set.elem) {
        // A map element is [key, value]; an element with a comment is { elem: { val, comment } }.
        const keyPart = Array.isArray(e) ? e[0] : e;
        const wrapped = (keyPart as { elem?: { val: unknown; comment?: string } }).elem;
        const val = wrapped ? wrapped.val : keyPart;
        const owner = wrapped?.comment ? parseOwnerComment(wrapped.comment) : undefined;
        const key = elementKey(val);
        if (key === undefined) continue;
        const el: Element = owner ? { key, owner } : { key };
        if (set.name === 'masq_saddr') masq.push(el);
        else if (set.name === 'map_port_ipport') ports.push(el);
      }
    }
    return { exists: true, masq, ports };
  }

  /**
   * Removes the elements whose owner `isGone` says is gone (or, by default,
   * owned by `owner`), and the table when nothing is left in it. Returns
   * how many elements went.
   */
  remove(isGone: (o: Owner) => boolean): number {
    return this.withLock(() => this.removeLocked(isGone));
  }

  private removeLocked(isGone: (o: Owner) => boolean): number {
    const { exists, masq, ports } = this.contents();
    const lines: string[] = [];
    for (const e of masq)
      if (e.owner && isGone(e.owner)) lines.push(`delete element ${T} masq_saddr { ${e.key} }`);
    for (const e of ports)
      if (e.owner && isGone(e.owner)) lines.push(`delete element ${T} map_port_ipport { ${e.key} }`);
    if (lines.length) this.nft.run(lines.join('\n'));
    const left = masq.length + ports.length - lines.length;
    // No second listing: a table that was not there is not deleted, and one that went meanwhile fails the delete.
    if (left === 0 && exists) {
      try {
        this.nft.run(`delete table ${T}`);
      } catch (e) {
        // Someone added an element in between: then the table stays.
        if (!(e instanceof NftError)) throw e;
      }
    }
    return lines.length;
  }

  removeOwner(owner: Owner): number {
    const c = ownerComment(owner);
    return this.remove((o) => ownerComment(o) === c);
  }
}

function elementKey(val: unknown): string | undefined {
  if (typeof val === 'string') return val;
  if (val && typeof val === 'object') {
    const v = val as { prefix?: { addr: string; len: number }; concat?: unknown[]; range?: unknown[] };
    if (v.prefix) return `${v.prefix.addr}/${v.prefix.len}`;
    if (v.concat) return v.concat.map(String).join(' . ');
    if (v.range) return v.range.map(String).join('-');
  }
  return undefined;
}

/** Whether the process an owner names is gone (links are checked by the caller). */
export function processGone(o: Owner): boolean {
  if (!('pid' in o)) return false;
  return processStartTime(o.pid) !== o.start;
}
