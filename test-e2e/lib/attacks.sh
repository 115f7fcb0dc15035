#!/bin/sh
# The attack list of issue 14, run as root inside a container (Debian tree:
# util-linux mount, perl). One line per attempt: NAME<TAB>RESULT<TAB>DETAIL,
# RESULT being "refused" (the attempt failed), "absent" (nothing to attack
# on this kernel) or "SUCCEEDED". Nothing real is written into the host's
# tunables: a tunable gets its current value back, a call that could change
# host state gets arguments the kernel refuses after its permission check
# (so a refusal by permission and a pass of it are told apart by errno), or
# the state it already has. Env: HOSTPID (a host pid), ROOTDEV (MAJ:MIN of
# the host's root disk), MARKER (a host path absent from the tree).
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export LC_ALL=C
T=$(mktemp -d /tmp/attack.XXXXXX)

report() { printf '%s\t%s\t%s\n' "$1" "$2" "$3"; }
# run NAME CMD...: SUCCEEDED when CMD exits 0, else refused with its message.
run() {
  name=$1
  shift
  if out=$("$@" 2>&1); then report "$name" SUCCEEDED "$(echo "$out" | head -c 200 | tr '\n\t' '  ')"
  else report "$name" refused "$(echo "$out" | tail -n 2 | head -c 200 | tr '\n\t' '  ')"; fi
}
# Writes a file's own content back to it (a same-value sysctl write).
same() { [ -e "$1" ] || { echo "absent: $1"; return 2; }; v=$(cat "$1") && printf '%s\n' "$v" > "$1"; }
sameq() { if [ -e "$2" ]; then run "$1" same "$2"; else report "$1" absent "$2"; fi; }
# perl NAME CODE: CODE returns an errno-style result: 0 / a message.
pl() { run "$1" perl -e "$2"; }
# A call that reaches its action only with the privilege: EPERM/EACCES is a refusal, anything else passed the check.
PRIV='sub priv { my ($r, $what) = @_; if ($r >= 0) { print "$what: ok\n"; exit 0 } if ($!{EPERM} || $!{EACCES}) { print "$what: $!\n"; exit 1 } print "$what: $! (past the permission check)\n"; exit 0 }'

# Kernel tunables, core_pattern, uevent_helper, sysrq.
sameq sysctl-core_pattern /proc/sys/kernel/core_pattern
sameq sysctl-vm-swappiness /proc/sys/vm/swappiness
sameq sysctl-kernel-hostname-global /proc/sys/kernel/modprobe
sameq sys-uevent_helper /sys/kernel/uevent_helper
# A global sysfs tunable: the selected [value] written back.
thp=/sys/kernel/mm/transparent_hugepage/enabled
if [ -e $thp ]; then run sys-thp-write sh -c "v=\$(sed 's/.*\\[\\(.*\\)\\].*/\\1/' $thp) && echo \$v > $thp"
else report sys-thp-write absent $thp; fi
if [ -e /proc/sysrq-trigger ]; then run sysrq-trigger-open-write sh -c ': >> /proc/sysrq-trigger'
else report sysrq-trigger-open-write absent /proc/sysrq-trigger; fi
sameq sysctl-kernel-sysrq /proc/sys/kernel/sysrq

# Kernel memory and logs.
run dev-mem-mknod-read sh -c "mknod $T/mem c 1 1 && dd if=$T/mem of=/dev/null bs=1 count=1"
run dev-kmem-mknod-read sh -c "mknod $T/kmem c 1 2 && dd if=$T/kmem of=/dev/null bs=1 count=1"
if [ -e /proc/kcore ]; then run proc-kcore-read dd if=/proc/kcore of=/dev/null bs=1 count=1
else report proc-kcore-read absent /proc/kcore; fi
# Masked /proc files: one byte of kernel timer internals.
run proc-timer_list-read sh -c 'head -c 1 /proc/timer_list | grep -q .'
run dmesg-read dmesg
# syslog(SYSLOG_ACTION_SIZE_UNREAD): the permission check of dmesg -c (CLEAR), without clearing.
pl syslog-clear-permission "$PRIV priv(syscall(103, 9, 0, 0), 'syslog SIZE_UNREAD')"

# Block devices: the host's root disk.
run block-mknod-open-rootdisk sh -c "mknod $T/disk b $(echo "$ROOTDEV" | tr : ' ') && dd if=$T/disk of=/dev/null bs=512 count=1"

# Modules, kexec (invalid flags: EINVAL only past the permission check).
pl init_module "$PRIV my \$e = ''; priv(syscall(175, 0, 0, \$e), 'init_module')"
pl finit_module "$PRIV my \$e = ''; priv(syscall(313, -1, \$e, 0), 'finit_module')"
pl kexec_load "$PRIV priv(syscall(246, 0, 0, 0, 0x80), 'kexec_load')"
pl kexec_file_load "$PRIV priv(syscall(320, -1, -1, 0, 0, 0x100), 'kexec_file_load')"

# File handles: a bogus handle is ESTALE/EINVAL past the CAP_DAC_READ_SEARCH check.
pl open_by_handle_at "$PRIV my \$h = pack('LlQ', 8, 1, 0); priv(syscall(304, -100, \$h, 0), 'open_by_handle_at')"

# Swap (no such file: ENOENT past the check).
pl swapon "$PRIV my \$f = '/nonexistent-swap'; priv(syscall(167, \$f, 0), 'swapon')"

# Clock: the values it has already.
pl clock_settime "$PRIV my \$ts = pack('qq', 0, 0); syscall(228, 0, \$ts) == 0 or die \"clock_gettime: \$!\n\"; priv(syscall(227, 0, \$ts), 'clock_settime(REALTIME, now)')"
pl settimeofday-tz "$PRIV my \$tv = pack('qq', 0, 0); my \$tz = pack('ll', 0, 0); syscall(96, \$tv, \$tz) == 0 or die \"gettimeofday: \$!\n\"; priv(syscall(164, 0, \$tz), 'settimeofday(NULL, current tz)')"
pl adjtimex-tick "$PRIV my \$tx = pack('x208'); syscall(159, \$tx) >= 0 or do { print \"adjtimex (reading): \$!\n\"; exit 1 }; my \$tick = unpack('q', substr(\$tx, 88, 8)); substr(\$tx, 0, 4) = pack('L', 0x4000); priv(syscall(159, \$tx), \"adjtimex(ADJ_TICK=\$tick)\")"

# I/O ports (this process's own permission only).
pl iopl "$PRIV priv(syscall(172, 3), 'iopl(3)')"
pl ioperm "$PRIV priv(syscall(173, 0x80, 1, 1), 'ioperm(0x80)')"

# perf: a system-wide software counter on CPU 0.
pl perf_event_open "$PRIV my \$a = pack('LLQ', 1, 128, 0) . pack('x104'); priv(syscall(298, \$a, -1, 0, -1, 0), 'perf_event_open(cpu-clock, all tasks, cpu 0)')"

# cgroup v1 release_agent: a new named hierarchy, its release_agent opened for writing.
mkdir -p "$T/cg"
if mount -t cgroup -o none,name=sdattack cgroup "$T/cg" 2>"$T/err"; then
  run cgroup-release_agent sh -c ": >> $T/cg/release_agent"
  umount "$T/cg"
else report cgroup-release_agent refused "mount cgroup v1: $(tr '\n' ' ' < "$T/err")"; fi

# chroot break-outs: a double chroot, and fchdir to a directory outside it.
mkdir -p "$T/c"
pl chroot-double "chroot('$T/c') or die \"chroot: \$!\n\"; chdir('../../../../../..'); chroot('.') or die \"chroot .: \$!\n\"; -e '$MARKER' or die \"no host file: still inside\n\"; print \"host file $MARKER visible\n\""
pl chroot-fchdir "opendir(my \$d, '/') or die; chroot('$T/c') or die \"chroot: \$!\n\"; chdir(\$d) or die \"fchdir: \$!\n\"; chdir('..') for 1..8; chroot('.') or die \"chroot .: \$!\n\"; -e '$MARKER' or die \"no host file: still inside\n\"; print \"host file $MARKER visible\n\""

# Host pids.
run kill-host-pid kill -0 "$HOSTPID"
if grep -q attacks /proc/1/cmdline 2>/dev/null; then report proc-1-is-host-init refused "/proc/1 is the container's: $(tr '\0' ' ' < /proc/1/cmdline | head -c 80)"
else report proc-1-is-host-init SUCCEEDED "$(tr '\0' ' ' < /proc/1/cmdline | head -c 80)"; fi

# Remounts and umounts of what protects the kernel, and new instances elsewhere.
run remount-rw-proc-sys mount -o remount,rw /proc/sys
run remount-rw-sys mount -o remount,rw /sys
run bind-remount-rw-sys mount -o remount,bind,rw /sys
run bind-remount-rw-proc-sys-kernel sh -c "mount --bind /proc/sys/kernel /proc/sys/kernel && mount -o remount,bind,rw /proc/sys/kernel && v=\$(cat /proc/sys/kernel/core_pattern) && printf '%s\n' \"\$v\" > /proc/sys/kernel/core_pattern"
run umount-proc-sys umount /proc/sys
run umount-sys umount /sys
run umount-proc-kcore umount /proc/kcore
run umount-proc-timer_list umount /proc/timer_list
run remount-rw-proc-acpi-or-bus sh -c 'for d in /proc/acpi /proc/bus; do [ -d $d ] && mount -o remount,rw $d && exit 0; done; exit 1'
mkdir -p "$T/p" "$T/s" "$T/rp"
run new-proc-write-core_pattern sh -c "mount -t proc proc $T/p && v=\$(cat $T/p/sys/kernel/core_pattern) && printf '%s\n' \"\$v\" > $T/p/sys/kernel/core_pattern"
umount "$T/p" 2>/dev/null
run new-sysfs-rw-mount mount -t sysfs sysfs "$T/s"
umount "$T/s" 2>/dev/null
run rbind-proc-umount-sys-write sh -c "mount --rbind /proc $T/rp && umount $T/rp/sys && v=\$(cat $T/rp/sys/kernel/core_pattern) && printf '%s\n' \"\$v\" > $T/rp/sys/kernel/core_pattern"
umount -R "$T/rp" 2>/dev/null
# After all that: does a plain write of core_pattern work now?
sameq sysctl-core_pattern-after /proc/sys/kernel/core_pattern
echo END
