#!/usr/bin/env bash
# Captures real Kea logs for test/fixtures/kea/captured*/: kea-dhcp4 and kea-dhcp6 in a
# private network namespace, driven by perfdhcp (allocate, renew, release) plus lease_cmds over
# the control socket and, when ../shared/kea/tools is present, small clients that provoke
# decline, NAK and INIT-REBOOT. Each daemon runs twice: at INFO with three outputs (default
# file pattern, a custom pattern, stdout) and at DEBUG 99 (multi-line records).
#
# VERSION: 2.2 (the host's Debian 12 packages; the default) or 2.6 / 3.0 (Debian's in a chroot,
# built by scripts/kea-chroot.sh). Needs root (network namespaces).
# Usage: scripts/capture-kea-fixtures.sh [VERSION] [OUT_DIR]
#   default OUT_DIR: test/fixtures/kea/captured (2.2), test/fixtures/kea/captured-VERSION (others)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
KEA_VERSION=2.2
if [[ "${1:-}" =~ ^[0-9]+\.[0-9]+$ ]]; then KEA_VERSION=$1; shift; fi
SUFFIX=""
[ "$KEA_VERSION" = 2.2 ] || SUFFIX="-$KEA_VERSION"
OUT=${1:-$ROOT/test/fixtures/kea/captured$SUFFIX}
TOOLS=$ROOT/../shared/kea/tools
WORK=$(mktemp -d /tmp/keatrail-capture.XXXXXX)
# Kea 2.6.3 wants its control socket's directory at mode 0750.
chmod 750 "$WORK"
NS_SRV=kt-cap-srv
NS_CLI=kt-cap-cli
CUSTOM_PATTERN='%D{%Y-%m-%dT%H:%M:%S.%q%z} %h %c[%i]: %-5p %m\n'

need() { command -v "$1" >/dev/null 2>&1; }
if [ "$KEA_VERSION" = 2.2 ]; then
  if ! need kea-dhcp4 || ! need perfdhcp; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kea-dhcp4-server kea-dhcp6-server kea-admin >/dev/null
  fi
  CHROOT=""
  KEA_V=$(kea-dhcp4 -V | head -n1)
else
  CHROOT=$("$HERE/kea-chroot.sh" "$KEA_VERSION")
  KEA_V=$(chroot "$CHROOT" kea-dhcp4 -V | head -n1)
fi
HOOKS=$(dirname "$(find "$CHROOT/usr/lib" -name libdhcp_lease_cmds.so | head -n1)")
HOOKS=${HOOKS#"$CHROOT"}

# kea_in NETNS: sets KEA_RUN to the command prefix that runs a Kea binary of $KEA_VERSION there.
# A chroot's Kea sees $WORK at the same path (a private mount namespace: nothing is left in the
# chroot) and may use it for logs, leases and sockets (Kea >= 2.6 restricts those paths).
kea_in() {
  if [ -z "$CHROOT" ]; then
    KEA_RUN=(ip netns exec "$1" env KEA_PIDFILE_DIR="$WORK/lock" KEA_LOCKFILE_DIR="$WORK/lock")
  else
    KEA_RUN=(ip netns exec "$1" unshare -m --propagation private sh -c '
      set -e; r=$1; w=$2; shift 2
      mount -t proc proc "$r/proc"; mount -t tmpfs tmpfs "$r/tmp"; mkdir -p "$r$w"; mount --bind "$w" "$r$w"
      exec chroot "$r" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 TZ=UTC \
        KEA_PIDFILE_DIR="$w/lock" KEA_LOCKFILE_DIR="$w/lock" KEA_LOG_FILE_DIR="$w" KEA_DHCP_DATA_DIR="$w" KEA_CONTROL_SOCKET_DIR="$w" "$@"' \
      sh "$CHROOT" "$WORK")
  fi
}

cleanup() {
  set +e
  for p in "$WORK"/*.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null; done
  sleep 1
  ip netns del "$NS_SRV" 2>/dev/null
  ip netns del "$NS_CLI" 2>/dev/null
}
trap cleanup EXIT

cleanup
ip netns add "$NS_SRV"
ip netns add "$NS_CLI"
ip link add kt-s0 netns "$NS_SRV" type veth peer name kt-c0 netns "$NS_CLI"
ip -n "$NS_SRV" addr add 192.0.2.1/24 dev kt-s0
ip -n "$NS_SRV" addr add 2001:db8:1::1/64 dev kt-s0 nodad
ip -n "$NS_CLI" addr add 192.0.2.250/24 dev kt-c0
for ns in "$NS_SRV" "$NS_CLI"; do ip -n "$ns" link set lo up; done
ip -n "$NS_SRV" link set kt-s0 up
ip -n "$NS_CLI" link set kt-c0 up
sleep 2 # IPv6 link-local addresses

mkdir -p "$WORK/lock" "$OUT"
export KEA_PIDFILE_DIR=$WORK/lock KEA_LOCKFILE_DIR=$WORK/lock

# kea_config FAMILY MODE → a Kea config on stdout
kea_config() {
  local fam=$1 mode=$2 name=kea-dhcp$1 outputs
  if [ "$mode" = info ]; then
    outputs=$(cat <<EOF
        { "output": "$WORK/$name-INFO-file.log", "maxsize": 0 },
        { "output": "$WORK/$name-INFO-custom.log", "maxsize": 0, "pattern": "$CUSTOM_PATTERN" },
        { "output": "stdout" }
EOF
)
  else
    outputs="{ \"output\": \"$WORK/$name-DEBUG-file.log\", \"maxsize\": 0 }"
  fi
  local severity=INFO debuglevel=0
  [ "$mode" = debug ] && severity=DEBUG debuglevel=99
  if [ "$fam" = 4 ]; then
    cat <<EOF
{ "Dhcp4": {
  "interfaces-config": { "interfaces": [ "kt-s0" ], "dhcp-socket-type": "raw" },
  "control-socket": { "socket-type": "unix", "socket-name": "$WORK/kea4.sock" },
  "lease-database": { "type": "memfile", "persist": true, "name": "$WORK/$name-$mode-leases.csv", "lfc-interval": 0 },
  "valid-lifetime": 20, "renew-timer": 5, "rebind-timer": 15, "decline-probation-period": 10,
  "expired-leases-processing": { "reclaim-timer-wait-time": 2, "flush-reclaimed-timer-wait-time": 5, "hold-reclaimed-time": 5 },
  "hooks-libraries": [ { "library": "$HOOKS/libdhcp_lease_cmds.so" } ],
  "subnet4": [ { "id": 1, "subnet": "192.0.2.0/24", "pools": [ { "pool": "192.0.2.10 - 192.0.2.70" } ] } ],
  "loggers": [ { "name": "kea-dhcp4", "severity": "$severity", "debuglevel": $debuglevel, "output_options": [ $outputs ] } ]
} }
EOF
  else
    cat <<EOF
{ "Dhcp6": {
  "server-id": { "type": "LLT", "persist": false },
  "interfaces-config": { "interfaces": [ "kt-s0" ] },
  "control-socket": { "socket-type": "unix", "socket-name": "$WORK/kea6.sock" },
  "lease-database": { "type": "memfile", "persist": true, "name": "$WORK/$name-$mode-leases.csv", "lfc-interval": 0 },
  "preferred-lifetime": 15, "valid-lifetime": 20, "renew-timer": 5, "rebind-timer": 10, "decline-probation-period": 10,
  "expired-leases-processing": { "reclaim-timer-wait-time": 2, "flush-reclaimed-timer-wait-time": 5, "hold-reclaimed-time": 5 },
  "hooks-libraries": [ { "library": "$HOOKS/libdhcp_lease_cmds.so" } ],
  "subnet6": [ { "id": 1, "subnet": "2001:db8:1::/64", "interface": "kt-s0",
    "pools": [ { "pool": "2001:db8:1::100 - 2001:db8:1::160" } ],
    "pd-pools": [ { "prefix": "2001:db8:8000::", "prefix-len": 48, "delegated-len": 56 } ] } ],
  "loggers": [ { "name": "kea-dhcp6", "severity": "$severity", "debuglevel": $debuglevel, "output_options": [ $outputs ] } ]
} }
EOF
  fi
}

# ctl SOCKET COMMAND [ARGUMENTS-JSON]: one command over Kea's unix control socket.
ctl() {
  python3 - "$@" <<'EOF'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
cmd = {"command": sys.argv[2]}
if len(sys.argv) > 3: cmd["arguments"] = json.loads(sys.argv[3])
s.sendall(json.dumps(cmd).encode()); s.shutdown(socket.SHUT_WR)
print(s.recv(1 << 20).decode()[:200])
EOF
}

run() {
  local fam=$1 mode=$2 name=kea-dhcp$1
  kea_config "$fam" "$mode" > "$WORK/$name-$mode.json"
  kea_in "$NS_SRV"
  "${KEA_RUN[@]}" "kea-dhcp$fam" -c "$WORK/$name-$mode.json" > "$WORK/$name-$mode.stdout" 2>&1 &
  echo $! > "$WORK/kea$fam.pid"
  sleep 3
  local sock=$WORK/kea$fam.sock
  if [ "$fam" = 4 ]; then
    ctl "$sock" lease4-add '{"ip-address":"192.0.2.201","hw-address":"1a:1b:1c:1d:1e:1f","subnet-id":1,"hostname":"admin-added.example.org","valid-lft":3600}'
    ctl "$sock" lease4-update '{"ip-address":"192.0.2.201","hw-address":"1a:1b:1c:1d:1e:20","subnet-id":1,"valid-lft":7200}'
    ctl "$sock" lease4-del '{"ip-address":"192.0.2.201"}'
    ctl "$sock" lease4-add '{"ip-address":"192.0.2.201","hw-address":"1a:1b:1c:1d:1e:1f","subnet-id":1}'
    ctl "$sock" lease4-add '{"ip-address":"192.0.2.201","hw-address":"1a:1b:1c:1d:1e:2f","subnet-id":1}' || true
    if [ -f "$TOOLS/dhcp4client.py" ]; then ip netns exec "$NS_CLI" python3 "$TOOLS/dhcp4client.py" kt-c0 > "$WORK/client4-$mode.txt" 2>&1 || true; fi
    kea_in "$NS_CLI"
    "${KEA_RUN[@]}" perfdhcp -4 -r 10 -R 80 -p 8 -f 5 -F 3 -l kt-c0 192.0.2.1 > "$WORK/perfdhcp4-$mode.txt" 2>&1 || true
  else
    ctl "$sock" lease6-add '{"ip-address":"2001:db8:1::201","duid":"00:03:00:01:1a:1b:1c:1d:1e:1f","iaid":1,"subnet-id":1,"hostname":"admin-added6.example.org","valid-lft":3600}'
    ctl "$sock" lease6-del '{"ip-address":"2001:db8:1::201"}'
    if [ -f "$TOOLS/dhcp6client.py" ]; then ip netns exec "$NS_CLI" python3 "$TOOLS/dhcp6client.py" kt-c0 > "$WORK/client6-$mode.txt" 2>&1 || true; fi
    kea_in "$NS_CLI"
    "${KEA_RUN[@]}" perfdhcp -6 -e address-and-prefix -r 10 -R 80 -p 8 -f 5 -F 3 -l kt-c0 > "$WORK/perfdhcp6-$mode.txt" 2>&1 || true
  fi
  sleep 25 # let leases expire and be reclaimed
  kill -TERM "$(cat "$WORK/kea$fam.pid")"
  wait "$(cat "$WORK/kea$fam.pid")" 2>/dev/null || true
  rm -f "$WORK/kea$fam.pid"
}

for fam in 4 6; do
  run "$fam" info
  run "$fam" debug
  name=kea-dhcp$fam
  cp "$WORK/$name-INFO-file.log" "$WORK/$name-INFO-custom.log" "$OUT/"
  cp "$WORK/$name-info.stdout" "$OUT/$name-INFO-stdout.log"
  gzip -9 -c "$WORK/$name-DEBUG-file.log" > "$OUT/$name-DEBUG-file.log.gz"
  cp "$WORK/$name-info-leases.csv" "$OUT/$name-INFO-leases.csv"
  sed "s#$WORK#/var/lib/kea#g" "$WORK/$name-info.json" > "$OUT/$name-info.json"
done
{
  echo "captured: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "kea: $KEA_V"
  echo "custom_pattern: '$CUSTOM_PATTERN'"
  echo "timezone: $(cat /etc/timezone 2>/dev/null || echo UTC)"
  echo "hostname: $(hostname)"
} > "$OUT/CAPTURE.txt"
ls -la "$OUT"
