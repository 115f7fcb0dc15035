#!/usr/bin/env bash
# Builds (once) a Debian bookworm tree with systemd for the boot tests and
# prints its path. The tree is cached under $SD_TEST_CACHE (default
# /var/cache/sd-test) as debian-bookworm; a stamp file next to it says the
# build finished and with which recipe, so an interrupted or outdated build is
# redone and a complete one is reused as it is.
#
#   tools/debian-tree/build.sh            # prints /var/cache/sd-test/debian-bookworm
#   SD_DEBIAN_MIRROR=http://... build.sh  # another mirror
#   build.sh --rebuild                    # throw the cached tree away first
#
# Needs root (debootstrap). Installs debootstrap with apt-get when missing.
# The mirror is the first one apt is configured with for bookworm (deb822
# .sources or one-line .list files), else deb.debian.org.
set -euo pipefail

RECIPE=4 # bump when the steps below change: cached trees are rebuilt
SUITE=bookworm
CACHE_DIR=${SD_TEST_CACHE:-/var/cache/sd-test}
TREE=$CACHE_DIR/debian-$SUITE
STAMP=$TREE.stamp
INCLUDE=systemd,dbus,systemd-sysv

log() { printf '%s\n' "debian-tree: $*" >&2; }
die() {
  log "$*"
  exit 1
}

[[ $(id -u) == 0 ]] || die "must run as root (debootstrap)"

rebuild=0
for arg in "$@"; do
  case $arg in
  --rebuild) rebuild=1 ;;
  -h | --help)
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *) die "unknown argument: $arg" ;;
  esac
done

want_stamp="recipe=$RECIPE suite=$SUITE include=$INCLUDE arch=$(dpkg --print-architecture)"

complete() {
  [[ -f $STAMP && $(<"$STAMP") == "$want_stamp" && -x $TREE/usr/lib/systemd/systemd ]]
}

mkdir -p "$CACHE_DIR"
# One builder at a time (parallel test runs share the cache).
exec 9>"$CACHE_DIR/.debian-$SUITE.lock"
flock 9

if ((rebuild)); then
  rm -f "$STAMP"
fi
if complete; then
  printf '%s\n' "$TREE"
  exit 0
fi

# The mirror apt already uses for $SUITE's main component.
find_mirror() {
  local f uri
  if [[ -n ${SD_DEBIAN_MIRROR:-} ]]; then
    printf '%s\n' "$SD_DEBIAN_MIRROR"
    return
  fi
  # deb822: a stanza with Types: deb, a Suites: line naming $SUITE exactly, URIs: first one.
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    uri=$(awk -v suite="$SUITE" '
      function flush() {
        if (deb && hit && uri != "") { print uri; found = 1; exit }
        deb = 0; hit = 0; uri = ""
      }
      /^[[:space:]]*$/ { flush(); next }
      /^[[:space:]]*#/ { next }
      tolower($1) == "types:" { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
      tolower($1) == "uris:" { uri = $2 }
      tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == suite) hit = 1 }
      END { if (!found) flush() }
    ' "$f")
    if [[ -n $uri ]]; then
      printf '%s\n' "$uri"
      return
    fi
  done
  # One-line format: deb [options] URI SUITE COMPONENTS...
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    uri=$(awk -v suite="$SUITE" '
      $1 == "deb" {
        i = 2
        if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
        if ($(i + 1) == suite) { print $i; exit }
      }
    ' "$f")
    if [[ -n $uri ]]; then
      printf '%s\n' "$uri"
      return
    fi
  done
  printf '%s\n' "http://deb.debian.org/debian"
}

if ! command -v debootstrap >/dev/null; then
  log "installing debootstrap"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q debootstrap >&2 ||
    { apt-get update -q >&2 && apt-get install -y -q debootstrap >&2; } ||
    die "cannot install debootstrap"
fi

MIRROR=$(find_mirror)
WORK=$TREE.tmp
rm -f "$STAMP"
rm -rf --one-file-system "$WORK" "$TREE"
log "building $SUITE ($INCLUDE) from $MIRROR in $TREE (takes a few minutes)"
start=$SECONDS
if ! debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$WORK" "$MIRROR" >"$CACHE_DIR/debootstrap.log" 2>&1; then
  tail -n 30 "$CACHE_DIR/debootstrap.log" >&2 || true
  rm -rf --one-file-system "$WORK"
  die "debootstrap failed (full log: $CACHE_DIR/debootstrap.log)"
fi

# --- make it a harmless guest -------------------------------------------------
# An empty machine-id: systemd then uses the container's UUID (or a random id)
# for a transient one instead of every boot sharing a baked-in id.
: >"$WORK/etc/machine-id"
rm -f "$WORK/var/lib/dbus/machine-id"
# Root without a password: only reachable from the host (console, machinectl
# login/shell); no network login service is installed.
chroot "$WORK" passwd -d root >/dev/null
printf '%s\n' debian >"$WORK/etc/hostname"
# Nothing to download later, and a smaller cache.
rm -rf "$WORK"/var/cache/apt/archives/*.deb "$WORK"/var/lib/apt/lists/* "$WORK"/var/log/*.log
# Debootstrap leaves the host's resolv.conf: an empty one instead, which
# container managers can bind over even when the tree is read-only.
: >"$WORK/etc/resolv.conf"

mv "$WORK" "$TREE"
printf '%s\n' "$want_stamp" >"$STAMP"
log "done in $((SECONDS - start))s"
printf '%s\n' "$TREE"
