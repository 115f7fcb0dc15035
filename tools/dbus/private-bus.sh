#!/usr/bin/env bash
# A private dbus-daemon shaped like the system bus (system-bus.conf.in), on a
# socket in a temporary directory, for tests and for trying the daemons by
# hand without touching the host's bus.
#
#   eval "$(tools/dbus/private-bus.sh start)"   # exports DBUS_SYSTEM_BUS_ADDRESS,
#                                               # SD_PRIVATE_BUS_PID, SD_PRIVATE_BUS_DIR
#   busctl --address="$DBUS_SYSTEM_BUS_ADDRESS" list
#   tools/dbus/private-bus.sh stop "$SD_PRIVATE_BUS_PID" "$SD_PRIVATE_BUS_DIR"
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

case "${1:-}" in
  start)
    command -v dbus-daemon >/dev/null || { echo "private-bus: dbus-daemon is missing (apt-get install dbus-daemon)" >&2; exit 1; }
    dir="$(mktemp -d /tmp/sd-bus.XXXXXX)"
    # Reachable by unprivileged clients (tests connect as nobody).
    chmod 0755 "$dir"
    sed -e "s|@SOCKET@|$dir/bus|" -e "s|@PIDFILE@|$dir/pid|" "$here/system-bus.conf.in" >"$dir/bus.conf"
    # --fork: the daemon writes its pid file once the socket listens.
    dbus-daemon --config-file="$dir/bus.conf" --fork --print-address=1 >"$dir/address"
    pid="$(cat "$dir/pid")"
    address="unix:path=$dir/bus"
    printf 'export DBUS_SYSTEM_BUS_ADDRESS=%q SD_PRIVATE_BUS_PID=%q SD_PRIVATE_BUS_DIR=%q\n' "$address" "$pid" "$dir"
    ;;
  stop)
    pid="${2:?usage: private-bus.sh stop PID DIR}"
    dir="${3:?usage: private-bus.sh stop PID DIR}"
    # Only a dbus-daemon started with this directory's config is ours to stop.
    if [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "--config-file=$dir/bus.conf"; then
      kill "$pid"
      for _ in $(seq 50); do [[ -e /proc/$pid ]] || break; sleep 0.1; done
    fi
    case "$dir" in /tmp/sd-bus.*) rm -rf -- "$dir" ;; esac
    ;;
  *)
    echo "usage: $0 start | stop PID DIR" >&2
    exit 2
    ;;
esac
