"""SIGTERM drains: stop accepting, close idle keep-alive connections, let the
request in flight finish (up to shutdown_timeout), then exit 0."""

import json
import os
import signal
import socket
import subprocess
import time

from harness import RawConn, build_request, wait_until


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def start_slow(d, up, ms):
    c = RawConn(d.port, timeout=15)
    c.send(build_request("GET", "/delay/%d" % ms))
    path = "/delay/%d" % ms
    assert wait_until(lambda: any(h["path"] == path for h in list(up.heads)), 3), \
        "the slow request did not reach the upstream"
    return c


def test_sigterm_lets_slow_request_finish(make_daemon, upstream):
    d = make_daemon(upstream, glob={"shutdown_timeout": "5s"})
    d.expect_exit = True  # the test stops it and checks the exit code

    # An idle keep-alive connection: closed at once on SIGTERM.
    idle = RawConn(d.port, timeout=5)
    idle.send(build_request("GET", "/echo/idle"))
    assert idle.read_response().status == 200

    slow = start_slow(d, upstream, 1500)
    t_term = time.monotonic()
    os.kill(d.proc.pid, signal.SIGTERM)
    assert d.wait_log(r"SIGTERM: stopping", timeout=2), d.stderr()

    # Not accepting any more.
    assert refused(d.port), "a new connection was accepted after SIGTERM"
    assert idle.closed_within(1.0), "the idle keep-alive connection was not closed"
    assert d.alive(), "tlslift exited before the request in flight finished"

    r = slow.read_response(timeout=5)
    t_resp = time.monotonic()
    assert r.status == 200, r
    assert json.loads(r.body)["path"] == "/delay/1500"
    assert slow.closed_within(2.0), "the drained connection was not closed after its response"
    slow.close()
    idle.close()

    try:
        rc = d.proc.wait(5)
    except subprocess.TimeoutExpired:
        raise AssertionError("tlslift did not exit within shutdown_timeout after draining")
    t_exit = time.monotonic()
    assert rc == 0, d.stderr()
    assert t_resp - t_term >= 1.0, "the response came too soon: the delay path did not delay"
    assert t_exit - t_term < 4.0, "exited %.2fs after SIGTERM (request took ~1.5s)" % (t_exit - t_term)
    assert t_exit - t_resp < 1.0, "exited %.2fs after the last request finished" % (t_exit - t_resp)
    assert "exiting anyway" not in d.stderr()
    assert refused(d.port)


def test_sigterm_with_nothing_in_flight_exits_at_once(make_daemon, upstream):
    d = make_daemon(upstream, glob={"shutdown_timeout": "10s"})
    d.expect_exit = True  # the test stops it and checks the exit code
    st, _, _ = d.request("GET", "/echo/x")
    assert st == 200
    t = time.monotonic()
    os.kill(d.proc.pid, signal.SIGTERM)
    rc = d.proc.wait(5)
    assert rc == 0, d.stderr()
    assert time.monotonic() - t < 1.0


def test_sigterm_gives_up_after_shutdown_timeout(make_daemon, upstream):
    d = make_daemon(upstream, glob={"shutdown_timeout": "1"})
    d.expect_exit = True  # the test stops it and checks the exit code
    slow = start_slow(d, upstream, 4000)
    t_term = time.monotonic()
    os.kill(d.proc.pid, signal.SIGTERM)
    try:
        rc = d.proc.wait(4)
    except subprocess.TimeoutExpired:
        raise AssertionError("tlslift still running 4s after SIGTERM with shutdown_timeout = 1")
    took = time.monotonic() - t_term
    assert rc == 0, d.stderr()
    assert 0.8 <= took <= 2.0, "exited %.2fs after SIGTERM, shutdown_timeout = 1s" % took
    assert "exiting anyway" in d.stderr()
    # The client got no complete response; its connection is gone.
    try:
        r = slow.read_response(timeout=2)
    except Exception:  # noqa: BLE001 - closed or reset: what is expected
        r = None
    assert r is None or r.status != 200, r
    slow.close()


def test_sigint_drains_too(make_daemon, upstream):
    d = make_daemon(upstream, glob={"shutdown_timeout": "5s"})
    d.expect_exit = True  # the test stops it and checks the exit code
    slow = start_slow(d, upstream, 700)
    os.kill(d.proc.pid, signal.SIGINT)
    assert d.wait_log(r"SIGINT: stopping", timeout=2), d.stderr()
    assert refused(d.port)
    r = slow.read_response(timeout=5)
    assert r.status == 200
    slow.close()
    assert d.proc.wait(5) == 0
