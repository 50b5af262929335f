#!/usr/bin/env bash
# syslog-ng from Debian for bench/e2e, unpacked into a private prefix instead of installed:
# Debian's syslog-ng-core conflicts with rsyslog (both are "the" system logger), and the tests
# use rsyslog as a real sender. Nothing is started here and nothing outside the prefix changes.
#
#   scripts/syslog-ng.sh install   fetch and unpack (once), print the prefix
#   scripts/syslog-ng.sh prefix    print the prefix if unpacked
#
# Run it as:  LD_LIBRARY_PATH=$P/usr/lib/syslog-ng:$P/usr/lib/x86_64-linux-gnu:$P/lib/x86_64-linux-gnu \
#   $P/usr/sbin/syslog-ng --module-path=$P/usr/lib/syslog-ng/3.38 -F -f CONFIG -R PERSIST -p PID -c CTL
set -euo pipefail

PREFIX="${KEATRAIL_SYSLOG_NG_PREFIX:-${XDG_CACHE_HOME:-$HOME/.cache}/keatrail/syslog-ng}"
PACKAGES=(syslog-ng-core syslog-ng-mod-http syslog-ng-scl libivykis0 libnet1 libpcre3 libwrap0)

case "${1:-install}" in
  install)
    if [ ! -x "$PREFIX/usr/sbin/syslog-ng" ]; then
      mkdir -p "$PREFIX.debs"
      cd "$PREFIX.debs"
      if ! apt-get download "${PACKAGES[@]}" >/dev/null 2>&1; then
        apt-get update >/dev/null
        apt-get download "${PACKAGES[@]}" >/dev/null
      fi
      for deb in ./*.deb; do dpkg-deb -x "$deb" "$PREFIX"; done
    fi
    echo "$PREFIX"
    ;;
  prefix)
    [ -x "$PREFIX/usr/sbin/syslog-ng" ] && echo "$PREFIX"
    ;;
  *)
    echo "usage: $0 install|prefix" >&2
    exit 2
    ;;
esac
