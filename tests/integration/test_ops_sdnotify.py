"""sd_notify: the messages tlslift sends to $NOTIFY_SOCKET, in order.

READY=1 (with STATUS= and MAINPID=) once listening; on SIGHUP RELOADING=1 with
MONOTONIC_USEC= then READY=1; on SIGTERM STOPPING=1; WATCHDOG=1 every
WATCHDOG_USEC/2 when the watchdog is on (and WATCHDOG_PID, if set, is ours).
"""

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from harness import tlslift_bin


def mono_usec():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class Notify:
    """An AF_UNIX datagram socket standing in for systemd's notify socket."""

    def __init__(self, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.dir = None
        if abstract:
            name = "tlslift-test-%s" % secrets.token_hex(6)
            self.sock.bind("\0" + name)
            self.env = "@" + name
        else:
            self.dir = tempfile.mkdtemp(prefix="tlnotify")
            path = os.path.join(self.dir, "notify.sock")
            self.sock.bind(path)
            self.env = path

    def recv(self, timeout):
        """One message as (arrival time, {KEY: VALUE}, raw text), or None on timeout."""
        self.sock.settimeout(max(0.001, timeout))
        try:
            data = self.sock.recv(4096)
        except (socket.timeout, TimeoutError):
            return None
        text = data.decode()
        kv = {}
        for line in text.split("\n"):
            assert "=" in line, "not KEY=VALUE: %r in %r" % (line, text)
            k, v = line.split("=", 1)
            kv[k] = v
        return time.monotonic(), kv, text

    def expect(self, key, timeout=3, skip=("WATCHDOG",)):
        """The next message that is not a watchdog ping; it must carry KEY=1."""
        deadline = time.monotonic() + timeout
        while True:
            m = self.recv(deadline - time.monotonic())
            assert m is not None, "no %s=1 within %ss" % (key, timeout)
            if any(k in m[1] for k in skip) and len(m[1]) == 1:
                continue
            assert m[1].get(key) == "1", "expected %s=1, got %r" % (key, m[2])
            return m

    def drain(self):
        out = []
        while True:
            m = self.recv(0.001)
            if m is None:
                return out
            out.append(m)

    def close(self):
        self.sock.close()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def notify():
    made = []

    def make(abstract=False):
        n = Notify(abstract)
        made.append(n)
        return n

    yield make
    for n in made:
        n.close()


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_notify_messages_in_order(make_daemon, upstream, notify, monkeypatch, abstract):
    n = notify(abstract)
    monkeypatch.setenv("NOTIFY_SOCKET", n.env)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    d = make_daemon(upstream)
    d.expect_exit = True  # stopped by the test, which checks the exit code

    _, ready, raw = n.expect("READY")
    assert ready.get("STATUS"), "READY=1 without STATUS=: %r" % raw
    assert ready.get("MAINPID") in (None, str(d.proc.pid)), raw
    st, _, _ = d.request("GET", "/echo/x")
    assert st == 200

    # A good reload.
    t0 = mono_usec()
    os.kill(d.proc.pid, signal.SIGHUP)
    _, rel, raw = n.expect("RELOADING")
    t1 = mono_usec()
    assert "MONOTONIC_USEC" in rel, raw
    ts = int(rel["MONOTONIC_USEC"])
    assert t0 <= ts <= t1, "MONOTONIC_USEC=%d not between %d and %d" % (ts, t0, t1)
    _, ready2, raw = n.expect("READY")
    assert "STATUS" in ready2, raw
    assert d.wait_log(r"configuration reloaded", timeout=2)

    # A failed reload is bracketed the same way: RELOADING, then READY again.
    good = d.config_path.read_text()
    d.config_path.write_text(good + "\nbogus_key = 1\n")
    os.kill(d.proc.pid, signal.SIGHUP)
    n.expect("RELOADING")
    _, ready3, raw = n.expect("READY")
    assert "fail" in ready3.get("STATUS", ""), raw
    d.config_path.write_text(good)

    os.kill(d.proc.pid, signal.SIGTERM)
    _, stop, raw = n.expect("STOPPING")
    assert d.proc.wait(5) == 0
    # Nothing after STOPPING=1 but (possibly) watchdog pings.
    rest = [m for m in n.drain() if "WATCHDOG" not in m[1]]
    assert not rest, rest


def test_no_notify_socket_no_messages(make_daemon, upstream, notify, monkeypatch):
    """Control: without NOTIFY_SOCKET the socket hears nothing."""
    n = notify()
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    d = make_daemon(upstream)
    os.kill(d.proc.pid, signal.SIGHUP)
    assert d.wait_log(r"configuration reloaded", timeout=2)
    assert n.recv(0.3) is None


def watchdog_pings(n, seconds):
    """Arrival times of WATCHDOG=1 messages over SECONDS (other messages skipped)."""
    out = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        m = n.recv(deadline - time.monotonic())
        if m is None:
            break
        if m[1].get("WATCHDOG") == "1":
            out.append(m[0])
    return out


def check_intervals(times, period):
    assert len(times) >= 2, times
    gaps = [b - a for a, b in zip(times, times[1:])]
    gaps.sort()
    median = gaps[len(gaps) // 2]
    assert period * 0.7 <= median <= period * 1.4, "median interval %.3fs, expected ~%.3fs (%r)" % (
        median, period, gaps)
    assert gaps[-1] <= period * 2.5, "a gap of %.3fs" % gaps[-1]


def test_watchdog_pings(make_daemon, upstream, notify, monkeypatch):
    n = notify()
    monkeypatch.setenv("NOTIFY_SOCKET", n.env)
    monkeypatch.setenv("WATCHDOG_USEC", "400000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    d = make_daemon(upstream)
    n.expect("READY")
    times = watchdog_pings(n, 1.5)
    assert 5 <= len(times) <= 9, "%d WATCHDOG=1 in 1.5s with WATCHDOG_USEC=400000" % len(times)
    check_intervals(times, 0.2)
    assert d.alive()


def spawn_with_pid_env(cfg, env, stderr_path, watchdog_pid):
    """tlslift -c CFG with WATCHDOG_PID set to its own pid (sh execs it) or to WATCHDOG_PID."""
    script = 'WATCHDOG_PID=%s; export WATCHDOG_PID; exec "$0" -c "$1"' % watchdog_pid
    with open(stderr_path, "ab") as err:
        return subprocess.Popen(["sh", "-c", script, str(tlslift_bin()), str(cfg)], env=env,
                                stdin=subprocess.DEVNULL, stdout=err, stderr=err)


@pytest.mark.parametrize("whose", ["own", "other"])
def test_watchdog_pid(make_daemon, upstream, notify, tmp_path, whose):
    """WATCHDOG_PID = our pid: pings; another pid: the watchdog is someone else's, no pings."""
    n = notify()
    # Write the config through the fixture without starting it.
    d = make_daemon(upstream, start=False)
    env = dict(os.environ, NOTIFY_SOCKET=n.env, WATCHDOG_USEC="400000")
    env.pop("LISTEN_FDS", None)
    p = spawn_with_pid_env(d.config_path, env, tmp_path / "wd.stderr",
                           "$$" if whose == "own" else "1")
    try:
        n.expect("READY", timeout=10)
        times = watchdog_pings(n, 1.2)
        if whose == "own":
            assert len(times) >= 4, "%d WATCHDOG=1 with WATCHDOG_PID = our pid" % len(times)
            check_intervals(times, 0.2)
        else:
            assert times == [], "WATCHDOG=1 sent though WATCHDOG_PID names another process"
        assert p.poll() is None
        p.send_signal(signal.SIGTERM)
        n.expect("STOPPING")
        assert p.wait(5) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
