"""The command line: --version, -h, usage errors, quick mode (-l/-u/--ca-file/-L), signals."""

import os
import re
import signal
import socket
import subprocess
import time

from harness import build_request, exchange, free_port, tlslift_bin


def _run(*args, timeout=20):
    return subprocess.run([str(tlslift_bin()), *map(str, args)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout, text=True)


def _version(text, name_rx):
    m = re.search(name_rx + r"\D{0,20}?(\d+)\.(\d+)(?:\.(\d+))?", text, re.I)
    return tuple(int(x) for x in m.groups() if x is not None) if m else None


def test_version(tlslift_binary):
    r = _run("--version")
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    assert re.search(r"tlslift\D{0,20}\d+\.\d+", out, re.I), out
    mbed = _version(out, r"mbed\s?TLS")
    assert mbed and mbed >= (3, 6), out
    assert _version(out, r"libuv") and _version(out, r"libuv") >= (1, 0), out
    assert _version(out, r"llhttp"), out


def test_help(tlslift_binary):
    for flag in ("-h", "--help"):
        r = _run(flag)
        assert r.returncode == 0, flag
        out = r.stdout + r.stderr
        for opt in ("-c", "-t", "-l", "-u", "--ca-file", "--version"):
            assert opt in out, (flag, opt, out)


def test_usage_errors_exit_2(tlslift_binary):
    for args in (["--no-such-option"], ["-l", "127.0.0.1:%d" % free_port()], ["-c"], []):
        r = _run(*args)
        assert r.returncode == 2, (args, r.returncode, r.stdout, r.stderr)
        assert (r.stdout + r.stderr).strip(), args


def test_missing_config_file_exit_1(tmp_path, tlslift_binary):
    r = _run("-c", tmp_path / "absent.ini")
    assert r.returncode == 1
    assert "absent.ini" in r.stdout + r.stderr


def _quick(make_daemon, upstream_url, pki, *extra):
    port = free_port()
    return make_daemon(args=["-l", "127.0.0.1:%d" % port, "-u", upstream_url, "--ca-file", pki.ca, *extra],
                       port=port)


def test_quick_mode(make_daemon, pki, upstream):
    d = _quick(make_daemon, upstream.url, pki)
    r = exchange(d.port, build_request("GET", "/echo/quick"))
    assert r.status == 200
    hosts = [v for k, v in upstream.heads[-1]["headers"] if k.lower() == "host"]
    assert hosts == ["localhost:%d" % upstream.port]
    acc = d.wait_access(1)
    assert acc and acc[-1].get("route") == "quick", d.stderr()


def test_quick_mode_verifies(make_daemon, make_upstream, pki):
    """Quick mode has no switch around verification: a self-signed upstream gets a 502."""
    up = make_upstream(cert="selfsigned")
    d = _quick(make_daemon, up.url, pki)
    assert exchange(d.port, build_request("GET", "/echo")).status == 502
    assert up.stats()["heads"] == 0


def test_quick_mode_log_level(make_daemon, pki, upstream):
    d = _quick(make_daemon, upstream.url, pki, "-L", "debug")
    assert exchange(d.port, build_request("GET", "/echo")).status == 200
    assert d.wait_log(r"^\S+ debug ", 3), d.stderr()


def test_quick_mode_rejects_http_upstream(tlslift_binary):
    r = _run("-l", "127.0.0.1:%d" % free_port(), "-u", "http://localhost:8080")
    assert r.returncode in (1, 2), r
    assert "https" in (r.stdout + r.stderr).lower()


def test_quick_mode_rejects_bad_log_level(pki, tlslift_binary):
    r = _run("-l", "127.0.0.1:%d" % free_port(), "-u", "https://localhost:8443",
             "--ca-file", pki.ca, "-L", "chatty")
    assert r.returncode in (1, 2)


def test_port_in_use_exit_1(tmp_path, pki, upstream, tlslift_binary):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        r = _run("-l", "127.0.0.1:%d" % port, "-u", upstream.url, "--ca-file", pki.ca, timeout=10)
        assert r.returncode == 1, (r.returncode, r.stderr)
        assert r.stderr.strip()
    finally:
        s.close()


def test_sigterm_stops_promptly(make_daemon, pki, upstream):
    d = _quick(make_daemon, upstream.url, pki)
    d.expect_exit = True
    assert exchange(d.port, build_request("GET", "/echo")).status == 200
    t0 = time.monotonic()
    os.kill(d.proc.pid, signal.SIGTERM)
    rc = d.proc.wait(5)
    assert time.monotonic() - t0 < 5
    assert rc == 0, rc
