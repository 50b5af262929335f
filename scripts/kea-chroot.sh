#!/usr/bin/env bash
# Builds (once) and prints the root of a minimal Debian chroot holding a newer ISC Kea than the
# host's Debian 12 package (2.2), for the real-Kea tests of other versions (issue 23):
#
#   scripts/kea-chroot.sh 2.6     # Debian trixie's kea 2.6.x
#   scripts/kea-chroot.sh 3.0     # Debian sid's kea 3.0.x
#
# The chroot is cached under $KEATRAIL_KEA_CHROOTS (default /var/tmp/keatrail-kea), built in a
# temporary directory and renamed when complete, so an interrupted build is never taken for a
# cached one; a lock makes parallel callers wait for one build. Needs root, debootstrap and
# deb.debian.org (~1 minute and ~350 MB per version). Steps: ../shared/kea/newer-kea-chroot.md.
set -euo pipefail

version="${1:-}"
# Each version is pinned to the Debian suite that ships it; when Debian moves on, the check
# after the build says so instead of testing another Kea under this version's name.
case "$version" in
  2.6) suite=trixie ;;
  3.0) suite=sid ;;
  *) echo "usage: $0 2.6|3.0 (the Kea version; 2.2 is the host's own package)" >&2; exit 64 ;;
esac

base="${KEATRAIL_KEA_CHROOTS:-/var/tmp/keatrail-kea}"
root="$base/kea-$version"
mirror="${KEATRAIL_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
mkdir -p "$base"

ready () { [ -f "$root/.keatrail-kea-version" ] && grep -q "^$version\." "$root/.keatrail-kea-version"; }

if ! ready; then
  [ "$(id -u)" = 0 ] || { echo "$0: building the Kea $version chroot needs root" >&2; exit 1; }
  command -v debootstrap >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin"
  command -v debootstrap >/dev/null 2>&1 || { echo "$0: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
  exec 9>"$base/.kea-$version.lock"
  flock 9
  if ! ready; then
    tmp="$base/.build-kea-$version.$$"
    rm -rf "$root" "$base"/.build-kea-"$version".*
    echo "== building the Kea $version chroot from Debian $suite in $root" >&2
    debootstrap --variant=minbase \
      --include=kea-dhcp4-server,kea-dhcp6-server,kea-admin,kea-ctrl-agent,iproute2 \
      "$suite" "$tmp" "$mirror" > "$base/kea-$version.build.log" 2>&1 \
      || { echo "$0: debootstrap of $suite failed; see $base/kea-$version.build.log" >&2; rm -rf "$tmp"; exit 1; }
    got="$(chroot "$tmp" kea-dhcp4 -v)"
    case "$got" in
      "$version".*) ;;
      *) rm -rf "$tmp"
         echo "$0: Debian $suite now ships Kea $got, not $version.x: pin another suite for $version in $0" >&2
         exit 1 ;;
    esac
    # systemd-tmpfiles makes these on a real system; the servers need them.
    mkdir -p "$tmp/var/lib/kea" "$tmp/var/log/kea" "$tmp/run/kea"
    echo "$got" > "$tmp/.keatrail-kea-version"
    mv "$tmp" "$root"
  fi
fi
echo "$root"
