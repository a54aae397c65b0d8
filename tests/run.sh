#!/bin/sh
# The whole test suite, as CI runs it: install the dependencies, build with
# warnings as errors, run unit and integration tests, then build again with
# AddressSanitizer + UndefinedBehaviorSanitizer and run everything again.
# The last line is "N passed, N failed, N skipped".
#
#   tests/run.sh            deps + both builds
#   tests/run.sh --quick    no deps step, plain build only
set -u
cd "$(dirname "$0")/.." || exit 1

quick=0
[ "${1:-}" = "--quick" ] && quick=1

if [ "$quick" = 0 ] && [ "${TLSLIFT_SKIP_DEPS:-0}" != 1 ]; then
    ./packaging/deps.sh || { echo "0 passed, 1 failed"; exit 1; }
fi

dirs=""
status=0
build_and_test() { # DIR MESON-ARGS...
    dir=$1
    shift
    if [ ! -f "$dir/build.ninja" ]; then
        meson setup "$dir" -Dwerror=true "$@" || return 1
    fi
    ninja -C "$dir" || return 1
    rm -f "$dir/tests/pytest.xml"
    meson test -C "$dir" --print-errorlogs --num-processes 2 || status=1
    dirs="$dirs $dir"
}

build_and_test build || status=1
if [ "$quick" = 0 ]; then
    # Leaks, overflows and undefined behaviour fail the daemon's exit code,
    # which the integration harness checks at every teardown.
    export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=86"
    export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=87"
    build_and_test build-asan -Db_sanitize=address,undefined -Db_lundef=false \
        -Dbuildtype=debug || status=1
fi

fuzz=""
if [ "$quick" = 0 ]; then
    # A short libFuzzer run over the ClientHello peek (seed corpus in the
    # repo); a crash fails the run. Counted as one test.
    if tests/fuzz/run.sh "${TLSLIFT_FUZZ_SECONDS:-20}" >build/fuzz.log 2>&1; then
        fuzz="--extra-passed 1"
    else
        tail -30 build/fuzz.log
        fuzz="--extra-failed 1"
        status=1
    fi
fi

# shellcheck disable=SC2086
/usr/bin/python3 tests/summary.py $fuzz $dirs || status=1
exit $status
