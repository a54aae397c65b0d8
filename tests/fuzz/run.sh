#!/bin/sh
# Fuzz hello_parse for SECONDS (default 20): configure build-fuzz with clang
# and -Dfuzz=true if it is not there yet, build the driver, and run it from
# the seed corpus, with inputs up to 20000 bytes (past HELLO_MAX). New inputs
# go to a temporary directory, so the committed corpus only changes when
# someone copies a finding in on purpose; a crash leaves its input in
# build-fuzz/ (crash-*) and makes this script fail.
#   tests/fuzz/run.sh 60
# Needs clang (Debian package: clang).
set -eu
secs=${1:-20}
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${FUZZ_BUILD:-$root/build-fuzz}

if ! command -v clang >/dev/null 2>&1; then
    echo "run.sh: clang is needed for libFuzzer (apt-get install -y clang)" >&2
    exit 2
fi
if [ ! -f "$build/build.ninja" ]; then
    CC=clang meson setup "$build" "$root" -Dfuzz=true -Dintegration=false -Dtests=disabled
fi
ninja -C "$build" tests/fuzz/fuzz_hello

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$build/tests/fuzz/fuzz_hello" -max_total_time="$secs" -print_final_stats=1 \
    -max_len=20000 -dict="$root/tests/fuzz/hello.dict" -artifact_prefix="$build/" \
    "$work" "$root/tests/fuzz/corpus/hello"
