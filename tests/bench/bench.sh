#!/bin/bash
# tlslift benchmark (not part of the test run): tlslift side by side with
# nginx (proxy_pass https + upstream keepalive) and stunnel (client mode),
# all against the same local TLS 1.3 upstream (a second nginx), loopback only.
#
# Usage:
#   tests/bench/bench.sh [options]
#
#   -d, --duration SECS     wrk run length per proxy and scenario (default 5)
#   -c, --connections N     wrk connections for the keep-alive run (default 16)
#   -n, --idle-conns N      idle client connections for the RSS test (default 1000)
#       --upload-mib N      upload size for the streaming test (default 100)
#       --repeat N          wrk runs per proxy and scenario; medians are printed (default 1)
#       --scenarios LIST    comma list of keepalive,close,idle,upload,tls10 (default all)
#       --tls10-suites LIST TLS 1.0 suites (OpenSSL names) for the tls10 handshake
#                           runs (default ECDHE-RSA-AES128-SHA,AES128-SHA); the
#                           first is also the keep-alive latency run's suite
#       --tls10-requests N  keep-alive GETs per connection kind in tls10 (default 5000)
#       --tls10-client auto|s_time|python
#                           handshake client (default auto: openssl s_time when it
#                           has -new/-reuse/-tls1, else a Python ssl loop)
#       --proxies LIST      comma list of tlslift,nginx,stunnel (default all installed)
#       --tlslift PATH      the binary (default build/daemon/tlslift of this repo)
#       --nginx PATH        nginx binary, or none (default: from PATH or /usr/sbin)
#       --stunnel PATH      stunnel binary, or none (default: stunnel4 or stunnel)
#       --key ec|rsa        upstream certificate key type (default ec: P-256)
#       --perf              one more (unmeasured) wrk run per proxy under perf stat
#                           (syscalls and context switches per request), and one
#                           under perf record for tlslift: prints its top functions
#       --keep-tmp          keep the temp dir (configs, logs, wrk output)
#   -h, --help
#
# Build first:  meson setup build && ninja -C build
# Needs: python3, openssl, wrk, nginx (the upstream; nginx-light is enough),
# curl; optional: stunnel4, perf (linux-perf). Debian:
#   apt-get install wrk nginx-light stunnel4 openssl curl
# Missing competitors are skipped ("nginx not installed: skipped"); without
# nginx the upstream falls back to a Python TLS server (throughput figures are
# then bounded by it).
#
# tls10 (issue 3): full and resumed TLS 1.0 handshakes per second and per
# server CPU-second against tlslift's TLS listener (tls_min_version = 1.0,
# BearSSL) and against `openssl s_server -tls1 -no_ticket -www` on the same
# RSA 2048 leaf and chain (from `tlslift mkcert`), per suite, with
# `openssl s_time -new|-reuse -tls1` (handshake and close, no request) run
# for --duration seconds; then N sequential keep-alive GETs on one TLS 1.0
# connection and N on one plain connection to the same tlslift listener
# (alternating blocks of 10, bounded by 60 s): p50/p99 per request and the
# difference in microseconds.
#
# The proxy under test is pinned to CPU 0 (taskset -c 0); wrk, the upstream
# and this script to CPU 1. Proxy CPU time is utime+stime from /proc/PID/stat
# of all its processes, before and after each wrk run. The script prints a
# table and PASS/MISS per target; it always exits 0 once it has run (it is a
# measurement, not a test). Every process it starts is stopped by PID.
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec /usr/bin/python3 "$here/bench.py" "$@"
