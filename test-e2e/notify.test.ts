import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgv, startContainer } from '@sd/nspawn';
import { beforeAll, describe, expect, it } from 'vitest';

// The notify socket (/run/host/notify) as systemd's TEST-13-NSPAWN checks it:
// READY=1 and STATUS= from the container's PID 1 reach sd-nspawn, also when
// PID 1 is root of its own user namespace (-U), whose credentials the kernel
// translates on the way out. The sender is perl's Socket from the Debian
// tree's perl-base (busybox cannot send a datagram to a unix socket). Another
// process of the container sends first, a forged READY=1: it is not heard.

const BUILD = fileURLToPath(new URL('../tools/debian-tree/build.sh', import.meta.url));
let tree = '';
beforeAll(() => {
  tree = execFileSync(BUILD, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 20 * 60_000,
  }).trim();
}, 20 * 60_000);

const SENDER = [
  'use Socket;',
  '$SIG{TERM} = sub { exit 0 };',
  'socket(my $s, PF_UNIX, SOCK_DGRAM, 0) or die "socket: $!";',
  'my $to = pack_sockaddr_un($ENV{NOTIFY_SOCKET});',
  'if (!fork()) { send($s, "READY=1\\nSTATUS=forged", 0, $to) or die "send: $!"; exit 0 } wait;',
  'send($s, "STATUS=tst starting", 0, $to) or die "send: $!";',
  'send($s, "READY=1\\nSTATUS=tst up", 0, $to) or die "send: $!";',
];

async function notifications(extra: string[], o: { briefWaitMs?: number } = {}) {
  const { settings, explicit } = parseArgv([
    '-q',
    '-D',
    tree,
    '--volatile=yes',
    '--machine=tst-notify',
    '--notify-ready=yes',
    '--console=pipe',
    // The sender exits 0 on SIGTERM; without --kill-signal a plain payload is killed (SIGKILL).
    '--kill-signal=SIGTERM',
    ...extra,
    '/usr/bin/perl',
    '-e',
    // With a brief wait the payload ends once it has sent; the wait on our thread reads the socket.
    [...SENDER, o.briefWaitMs ? 'exit 0;' : 'sleep 30;'].join(' '),
  ]);
  const seen: Array<Record<string, string>> = [];
  const { container, exited } = await startContainer(settings, { explicit, briefWaitMs: o.briefWaitMs });
  container.on('notify', (f) => seen.push(f));
  let ready = false;
  await Promise.race([
    container.whenReady().then(() => (ready = true)),
    new Promise((r) => setTimeout(r, 15_000)),
  ]);
  // (A payload that ended at once has no /proc entry left to read.)
  const uidMap = o.briefWaitMs
    ? ''
    : execFileSync('cat', [`/proc/${container.pid}/uid_map`], { encoding: 'utf8' });
  container.stop();
  const status = await exited;
  return { ready, seen, status, uidMap };
}

describe('the notify socket', () => {
  for (const [label, extra] of [
    ['host user namespace', []],
    ['-U', ['-U']],
  ] as const)
    it(`READY=1 and STATUS= from PID 1 arrive (${label})`, async () => {
      const r = await notifications([...extra]);
      if (extra.length) expect(r.uidMap.trim().split(/\s+/).slice(0, 1)).toEqual(['0']);
      if (extra.length) expect(Number(r.uidMap.trim().split(/\s+/)[1])).toBeGreaterThan(0);
      expect(r.ready).toBe(true);
      expect(r.seen.map((f) => f.STATUS)).toEqual(['tst starting', 'tst up']);
      expect(r.seen[1]).toMatchObject({ READY: '1' });
      expect(r.status).toMatchObject({ code: 0, signal: null });
    }, 60_000);

  it('a payload that sends and ends at once is heard on the brief wait (as sd-nspawn waits), after start returns', async () => {
    // briefWaitMs as long as perl's whole run: the wait on our thread, not the poller, reads the
    // socket and sees the end. The listener is attached after startContainer returned, as above.
    const t0 = Date.now();
    const r = await notifications(['-U'], { briefWaitMs: 10_000 });
    // Well within the wait: each message was read as it came (an unread one would keep the
    // wait spinning to its end, and the poller would read it only then).
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(r.ready).toBe(true);
    expect(r.seen.map((f) => f.STATUS)).toEqual(['tst starting', 'tst up']);
    expect(r.status).toMatchObject({ code: 0, signal: null });
  }, 60_000);
});
