#!/bin/sh
# Install what tlslift needs to build and test, on Debian 12 or 13.
#
# Debian 12 ships mbedTLS 2.28 (no TLS 1.3, end of life) and no llhttp, so on
# Debian 12 this script adds a Debian 13 ("trixie") apt source derived from the
# machine's own sources (same mirror, same keyring) and pins it low, so that only
# the packages named below come from it. Running it twice changes nothing.
#   packaging/deps.sh            build and test dependencies
#   packaging/deps.sh --bench    and the benchmark's (wrk, nginx, stunnel, perf)
set -eu

BUILD_PKGS="build-essential meson ninja-build pkg-config libuv1-dev libinih-dev libbearssl-dev"
PINNED_PKGS="libmbedtls-dev libllhttp-dev"
TEST_PKGS="libcmocka-dev python3 python3-pytest curl openssl gnutls-bin clang-format ca-certificates
 dpkg-dev debhelper fakeroot systemd strace groff-base man-db clang"
# Mono (the .NET HttpWebRequest interop test) is in Debian 12; where the
# archive has no Mono, that one test skips and says why.
MONO_PKGS="mono-mcs ca-certificates-mono"

die() { echo "deps.sh: $*" >&2; exit 1; }

[ -r /etc/os-release ] || die "cannot read /etc/os-release"
. /etc/os-release
if [ "${ID:-}" != debian ] || { [ "${VERSION_ID:-}" != 12 ] && [ "${VERSION_ID:-}" != 13 ]; }; then
    cat >&2 <<MSG
deps.sh: this script knows Debian 12 and 13 only (found ${PRETTY_NAME:-unknown}).
Install these yourself, then run meson:
  C compiler, meson >= 0.63, ninja, pkg-config
  mbedTLS >= 3.6 (mbedtls, mbedx509, mbedcrypto pkg-config files)
  libuv >= 1.44, inih (libinih), llhttp >= 8 (libllhttp), BearSSL 0.6
  for tests: cmocka, python3 with pytest, curl, openssl, gnutls-cli, clang (libFuzzer),
  mono (mcs, cert-sync), dpkg-dev, debhelper, systemd-analyze, strace, groff
MSG
    exit 1
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive

if [ "$VERSION_ID" = 12 ]; then
    src=/etc/apt/sources.list.d/tlslift-trixie.sources
    pin=/etc/apt/preferences.d/tlslift-trixie
    if [ ! -f "$src" ]; then
        # Take the first Debian mirror URI and keyring the machine already uses.
        uri=""; key=""
        if [ -f /etc/apt/sources.list.d/debian.sources ]; then
            uri=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
            key=$(awk '/^Signed-By:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
        fi
        if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
            uri=$(awk '$1 == "deb" && $0 ~ /bookworm/ && $0 !~ /security/ {
                      for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)
        fi
        [ -n "$uri" ] || die "no Debian mirror found in /etc/apt/sources.list{,.d}; add one first"
        [ -n "$key" ] || key=/usr/share/keyrings/debian-archive-keyring.gpg
        printf 'Types: deb\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: %s\n' \
            "$uri" "$key" | $SUDO tee "$src" >/dev/null
    fi
    if [ ! -f "$pin" ]; then
        # Everything from trixie at priority 1 (never chosen by itself) except
        # the few packages tlslift needs newer than bookworm has.
        cat <<PIN | $SUDO tee "$pin" >/dev/null
Package: *
Pin: release n=trixie
Pin-Priority: 1

Package: libmbedtls-dev libmbedtls21 libmbedx509-7 libmbedcrypto16 libllhttp-dev libllhttp9.2
Pin: release n=trixie
Pin-Priority: 600
PIN
    fi
fi

# tests/bench/bench.sh compares against nginx and stunnel with wrk: only on request.
BENCH_PKGS=""
[ "${1:-}" = "--bench" ] && BENCH_PKGS="wrk nginx-light stunnel4 linux-perf"

$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $BUILD_PKGS $PINNED_PKGS $TEST_PKGS $BENCH_PKGS
if apt-cache show mono-mcs >/dev/null 2>&1; then
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -q --no-install-recommends $MONO_PKGS
else
    echo "deps.sh: no Mono in this archive: the Mono interop test will be skipped" >&2
fi
