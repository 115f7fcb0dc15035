// Real peers (Debian's machinectl, dbus-daemon, busybox, qemu-user, btrfs-progs…)
// are installed by tools/setup. On a developer's machine a test that needs a
// missing one skips with the reason; in CI (CI=true) a missing peer is an
// error, so that a broken setup cannot turn into a green run of skipped tests.

/** The skip reason to use: `reason` outside CI; in CI a missing peer throws instead. */
export function peerOrSkip(reason: string | undefined): string | undefined {
  if (reason !== undefined && process.env.CI === 'true')
    throw new Error(`CI=true and a required peer is missing: ${reason} (tools/setup installs it)`);
  return reason;
}
