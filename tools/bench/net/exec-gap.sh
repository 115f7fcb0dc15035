#!/bin/bash
# What the network adds to sd-nspawn's start, to the microsecond: the time from sd-nspawn's own
# exec to the exec of its payload (which runs only once host0 has its lease), from the kernel's
# sched_process_exec events (perf, CLOCK_MONOTONIC), for -n and for --private-network, and the
# CPU time (user + sys) of each start. Builds to compare (copies of packages/nspawn/dist) take
# turns in every round, so that the machine's load falls on all alike.
#
#   tools/bench/net/exec-gap.sh [RUNS] [DIST_DIR...]      (root; default: packages/nspawn/dist)
#
# Runs in a network namespace and a busybox tree of its own, removed at the end.
set -euo pipefail
RUNS=${1:-12}; shift || true
REPO=$(cd "$(dirname "$0")/../../.." && pwd)
DISTS=("$@"); [ ${#DISTS[@]} -gt 0 ] || DISTS=("$REPO/packages/nspawn/dist")
command -v perf >/dev/null || { echo "exec-gap: perf is not installed" >&2; exit 1; }
BUSYBOX=$(command -v busybox) || { echo "exec-gap: busybox is not installed" >&2; exit 1; }
TMP=$(mktemp -d /tmp/sd-bench-execgap-XXXXXX)
unshare -n sh -c 'ip link set lo up; exec sleep 3600' & NSPID=$!
cleanup() { kill "$NSPID" 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
ROOT=$TMP/rootfs
mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,etc,run,var}
cp "$BUSYBOX" "$ROOT/bin/busybox"; chroot "$ROOT" /bin/busybox --install -s
printf 'ID=busybox\n' > "$ROOT/etc/os-release"
# Names no other process on the machine execs: the events of our starts alone are counted.
printf '#!/bin/true\n' > "$ROOT/bin/sd-execgap-payload"; chmod 755 "$ROOT/bin/sd-execgap-payload"
ln -s "$(command -v node)" "$TMP/sd-execgap-node"
sleep 0.2
NS=/proc/$NSPID/ns/net
start() { env -u NODE_EXTRA_CA_CERTS nsenter --net="$NS" "$TMP/sd-execgap-node" "$1/sd-nspawn.cjs" -q --register=no -D "$ROOT" -M sd-execgap "$2" /bin/sd-execgap-payload; }
# Each build once first: its code cache is written on the first start.
for d in "${DISTS[@]}"; do for a in -n --private-network; do start "$d" "$a"; done; done
: > "$TMP/cpu"
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
export -f start; export NS TMP ROOT
perf record -q -a -k mono -e sched:sched_process_exec -o "$TMP/perf.data" -- bash -c '
TIMEFORMAT="%U %S"
for i in $(seq '"$RUNS"'); do for d in '"${DISTS[*]}"'; do for a in -n --private-network; do
  { time start "$d" "$a"; } 2>> "$TMP/cpu"
done; done; done' 2>/dev/null
cat > "$TMP/report.py" <<'PY'
import os, re, statistics, sys
gaps, t0 = [], None
for line in sys.stdin:
    m = re.match(r"\s*([\d.]+):.*filename=(\S+)", line)
    if not m:
        continue
    t, f = float(m.group(1)) * 1000, m.group(2)
    if f.endswith("/sd-execgap-node"):
        t0 = t
    elif f.endswith("/sd-execgap-payload") and t0 is not None:
        gaps.append(t - t0)
        t0 = None
cpu = [sum(map(float, l.split())) * 1000 for l in open(os.environ["CPU"]) if l.strip()]
dists = os.environ["DISTS"].split()
n = 2 * len(dists)
med = statistics.median
if len(gaps) != len(cpu):
    sys.exit(f"exec-gap: {len(gaps)} exec pairs for {len(cpu)} starts")
print(f"{'build':40s} {'mode':18s} {'exec to exec':>12s} {'min':>8s} {'CPU':>8s}")
for i, d in enumerate(dists):
    for j, mode in enumerate(("-n", "--private-network")):
        g, c = gaps[2 * i + j :: n], cpu[2 * i + j :: n]
        print(f"{d[-40:]:40s} {mode:18s} {med(g):9.1f} ms {min(g):5.1f} ms {med(c):5.1f} ms")
    wall = med(gaps[2 * i :: n]) - med(gaps[2 * i + 1 :: n])
    c = med(cpu[2 * i :: n]) - med(cpu[2 * i + 1 :: n])
    print(f"{'':40s} {'network costs':18s} {wall:9.1f} ms {'':8s} {c:5.1f} ms")
after = " ".join(open("/proc/loadavg").read().split()[:3])
print(f"runs {len(gaps) // n}; load before {os.environ['LOAD']}, after {after}")
PY
perf script -i "$TMP/perf.data" -F time,trace 2>/dev/null |
  DISTS="${DISTS[*]}" CPU="$TMP/cpu" LOAD="$LOAD0" python3 "$TMP/report.py"
