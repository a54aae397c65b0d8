"""The daemon's system calls fit the unit's SystemCallFilter=.

tlslift.service allows @system-service minus @privileged and @resources, and
a call outside that set fails with EPERM. PID 1 here is not systemd, so
instead of running the unit, this runs `tlslift -t` and the daemon itself
(start, requests with and without a body through a pooled upstream
connection, SIGTERM) under strace, and checks every system call it made
against the set that `systemd-analyze syscall-filter` expands the unit's
filter lines into.

Needs strace and systemd-analyze (Debian packages strace, systemd).
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from harness import http_request, render_ini, wait_until

REPO = Path(__file__).resolve().parents[2]


def filter_lines():
    """The SystemCallFilter= values of tlslift.service, in order."""
    text = (REPO / "systemd" / "tlslift.service.in").read_text()
    return re.findall(r"^SystemCallFilter=(.*)$", text, re.M)


def syscall_groups(analyze):
    r = subprocess.run([analyze, "syscall-filter", "--no-pager"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    groups, cur = {}, None
    for line in r.stdout.splitlines():
        if line.startswith("@"):
            cur = groups.setdefault(line.strip(), [])
        elif cur is not None and line.startswith("    ") and not line.strip().startswith("#"):
            cur.append(line.strip())
    return groups


def expand(groups, names, seen=None):
    seen = set() if seen is None else seen
    out = set()
    for n in names:
        if n.startswith("@"):
            if n in seen:
                continue
            seen.add(n)
            out |= expand(groups, groups[n], seen)
        else:
            out.add(n)
    return out


@pytest.fixture(scope="module")
def allowed():
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed (Debian package: systemd)")
    groups = syscall_groups(analyze)
    allow = None
    for value in filter_lines():
        deny = value.startswith("~")
        names = value.lstrip("~").split()
        calls = expand(groups, names)
        if deny:
            assert allow is not None, "a deny list first would make the filter a deny list"
            allow -= calls
        else:
            allow = calls if allow is None else allow | calls
    assert allow and "read" in allow and "setrlimit" not in allow
    return allow


@pytest.fixture(scope="module")
def strace():
    exe = shutil.which("strace")
    if exe is None:
        pytest.fail("strace not installed (Debian package: strace)")
    return exe


SYSCALL_RE = re.compile(r"^\d+\s+(?:<\.\.\. )?([a-z0-9_]+)(?:\(| resumed>)")
SOCKET_RE = re.compile(r"^\d+\s+socket\((AF_\w+)", re.M)


def traced_calls(path):
    calls = set()
    for line in path.read_text(errors="replace").splitlines():
        m = SYSCALL_RE.match(line)
        if m:
            calls.add(m.group(1))
    return calls


def address_families():
    text = (REPO / "systemd" / "tlslift.service.in").read_text()
    m = re.search(r"^RestrictAddressFamilies=(.*)$", text, re.M)
    assert m and not m.group(1).startswith("~")
    return set(m.group(1).split())


def check(trace, allowed, what):
    calls = traced_calls(trace)
    # strace's own exec of the target is not the daemon's doing.
    outside = sorted(c for c in calls - allowed if c != "execve")
    assert not outside, ("%s makes system calls that tlslift.service's SystemCallFilter= "
                         "refuses (EPERM): %s" % (what, outside))
    families = set(SOCKET_RE.findall(trace.read_text(errors="replace")))
    # glibc's getaddrinfo() probes interfaces over netlink for AI_ADDRCONFIG and
    # copes when that socket is refused, so AF_NETLINK alone may appear.
    outside = sorted(families - address_families() - {"AF_NETLINK"})
    assert not outside, ("%s opens sockets that RestrictAddressFamilies= refuses: %s"
                         % (what, outside))


def write_config(tmp_path, pki, upstream, port):
    text = render_ini([
        ("tlslift", {"log_level": "info", "ca_file": str(pki.ca), "run_as_root": "yes"}),
        ("route test", {"listen": "127.0.0.1:%d" % port, "upstream": upstream.url}),
    ])
    conf = tmp_path / "tlslift.ini"
    conf.write_text(text)
    return conf


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SANITIZED = pytest.mark.skipif(
    os.environ.get("TLSLIFT_SANITIZED") == "1",
    reason="sanitizer builds make their own system calls and LeakSanitizer refuses ptrace; "
           "the plain build runs this test")


@SANITIZED
def test_check_mode_fits_the_filter(tmp_path, pki, upstream, tlslift_binary, strace, allowed):
    conf = write_config(tmp_path, pki, upstream, free_port())
    trace = tmp_path / "trace"
    r = subprocess.run([strace, "-f", "-qq", "-o", str(trace), str(tlslift_binary), "-t", "-c",
                        str(conf)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    check(trace, allowed, "tlslift -t")


@SANITIZED
def test_daemon_fits_the_filter(tmp_path, pki, upstream, tlslift_binary, strace, allowed):
    port = free_port()
    conf = write_config(tmp_path, pki, upstream, port)
    trace = tmp_path / "trace"
    errlog = open(tmp_path / "stderr", "w")
    proc = subprocess.Popen([strace, "-f", "-qq", "-o", str(trace), str(tlslift_binary), "-c",
                             str(conf)], stdin=subprocess.DEVNULL, stdout=errlog, stderr=errlog)
    try:
        def listening():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return True
            except OSError:
                return False

        assert wait_until(listening, 20), (tmp_path / "stderr").read_text()
        for i in range(3):
            status, _, _ = http_request(port, "GET", "/echo")
            assert status == 200
            status, _, _ = http_request(port, "POST", "/echo", body=b"x" * (200_000 + i),
                                        headers={"Content-Type": "application/octet-stream"})
            assert status == 200
        # Signal tlslift itself (the first pid in the trace), not strace.
        pid = int(trace.read_text().split(None, 1)[0])
        os.kill(pid, signal.SIGTERM)
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        errlog.close()
    time.sleep(0.1)
    check(trace, allowed, "tlslift -c (start, requests, SIGTERM)")
