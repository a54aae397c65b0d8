#!/bin/sh
# Build tlslift's binary .deb.
#
#   packaging/build-deb.sh [OUTDIR]      (default OUTDIR: build-deb/ at the top)
#
# The debian/ directory lives in packaging/debian so that the top of the tree
# stays the upstream project's. This copies the source tree (what git tracks
# or would track, else everything but build directories) into a temporary
# directory, puts packaging/debian at its top, runs dpkg-buildpackage there and
# copies the .deb files (and .buildinfo/.changes) into OUTDIR.
#
# Needs dpkg-dev and debhelper, plus the Build-Depends of
# packaging/debian/control (dpkg-buildpackage checks them first).
# DEB_BUILD_OPTIONS passes through, e.g. DEB_BUILD_OPTIONS=nocheck to skip
# the unit tests (the package build never runs the integration suite).
set -eu

die() { echo "build-deb.sh: $*" >&2; exit 1; }

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
out=${1:-$top/build-deb}

command -v dpkg-buildpackage >/dev/null || die "dpkg-buildpackage not found: apt-get install dpkg-dev debhelper"
command -v dh >/dev/null || die "dh not found: apt-get install debhelper"
[ -f "$here/debian/control" ] || die "no $here/debian/control"

version=$(dpkg-parsechangelog -l "$here/debian/changelog" -S Version)
upstream=${version%-*}

work=$(mktemp -d "${TMPDIR:-/tmp}/tlslift-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
src=$work/tlslift-$upstream
mkdir "$src"

# Copy the source tree. Inside a git work tree, take the tracked files and the
# untracked ones that .gitignore does not exclude (so build directories and
# caches stay out); elsewhere copy everything but the usual build leftovers.
if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # shellcheck disable=SC2016 # $f is for the inner sh.
    (cd "$top" && git ls-files -z --cached --others --exclude-standard |
        xargs -0 -r sh -c 'for f do if [ -e "$f" ]; then printf "%s\0" "$f"; fi; done' sh |
        tar --null -T - -cf -) | tar -C "$src" -xf -
else
    (cd "$top" && tar --exclude=./.git --exclude='./build*' --exclude='*/__pycache__' \
        --exclude='*/.pytest_cache' -cf - .) | tar -C "$src" -xf -
fi
rm -rf "$src/debian"
cp -a "$here/debian" "$src/debian"

case " ${DEB_BUILD_OPTIONS:-} " in
*" parallel="*) ;;
*) DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:+$DEB_BUILD_OPTIONS }parallel=$(nproc 2>/dev/null || echo 1)" ;;
esac
export DEB_BUILD_OPTIONS
# nocheck also as a build profile, so that the test-only Build-Depends
# (libcmocka-dev <!nocheck>) are not required either.
case " $DEB_BUILD_OPTIONS " in
*" nocheck "*) [ -n "${DEB_BUILD_PROFILES:-}" ] || export DEB_BUILD_PROFILES=nocheck ;;
esac

(cd "$src" && dpkg-buildpackage -us -uc -b)

mkdir -p "$out"
set -- "$work"/*.deb
[ -e "$1" ] || die "dpkg-buildpackage made no .deb"
cp "$work"/*.deb "$out"/
cp "$work"/*.buildinfo "$work"/*.changes "$out"/ 2>/dev/null || true
for f in "$work"/*.deb; do echo "build-deb.sh: $out/$(basename "$f")"; done
