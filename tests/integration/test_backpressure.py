"""Bodies are streamed with back-pressure, never buffered whole.

A client that does not read a large response, or an upstream that does not
read a large request body, must stop the other side instead of growing the
daemon's memory by the size of the body.
"""

import socket
import time

import pytest

from harness import RawConn, build_request, payload, sha256, wait_until

BIG = 48 * 1024 * 1024
GROWTH_LIMIT = 24 * 1024 * 1024


def rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS for %d" % pid)


def test_slow_reader_does_not_grow_memory(daemon, upstream):
    with RawConn(daemon.port) as warm:
        warm.send(build_request("GET", "/size/100000"))
        assert warm.read_response().status == 200
    base = rss(daemon.proc.pid)
    with RawConn(daemon.port, timeout=30) as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        c.send(build_request("GET", "/size/%d" % BIG))
        time.sleep(1.5)  # the client reads nothing; the upstream keeps writing
        peak = rss(daemon.proc.pid)
        assert peak - base < GROWTH_LIMIT, "daemon RSS grew by %d MiB while the client did not read" % (
            (peak - base) >> 20)
        r = c.read_response(timeout=60)
    assert r.status == 200
    assert len(r.body) == BIG
    assert sha256(r.body) == sha256(payload(BIG))


def test_stalled_upstream_stops_client_upload(make_daemon, upstream):
    d = make_daemon(upstream, route={"upstream_response_timeout": "20"})
    with RawConn(d.port) as warm:
        warm.send(build_request("GET", "/echo"))
        assert warm.read_response().status == 200
    base = rss(d.proc.pid)
    c = socket.create_connection(("127.0.0.1", d.port), timeout=5)
    try:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        c.sendall(build_request("POST", "/stall", [("Content-Length", str(BIG))]))
        # /stall reads the head and then nothing: tlslift must stop reading from us.
        c.setblocking(False)
        chunk = b"\0" * 65536
        sent, deadline = 0, time.monotonic() + 3
        while time.monotonic() < deadline and sent < BIG:
            try:
                sent += c.send(chunk)
            except BlockingIOError:
                time.sleep(0.01)
        peak = rss(d.proc.pid)
    finally:
        c.close()
    assert sent < BIG // 2, "the client could push %d MiB into a stalled upstream" % (sent >> 20)
    assert peak - base < GROWTH_LIMIT, "daemon RSS grew by %d MiB" % ((peak - base) >> 20)
    assert wait_until(lambda: d.alive(), 1)
    d.assert_serving(upstream)


@pytest.mark.parametrize("pool", ["fresh", "pooled"])
def test_slow_upstream_reader(daemon, upstream, pool):
    """An upstream that reads the body slowly: the upload pauses and resumes until it is all there."""
    if pool == "pooled":
        with RawConn(daemon.port) as c:
            c.send(build_request("GET", "/echo/warm"))
            assert c.read_response().status == 200
    body = payload(3 * 1024 * 1024)
    with RawConn(daemon.port, timeout=30) as c:
        c.send(build_request("POST", "/slowread", [("Content-Length", str(len(body)))], body))
        r = c.read_response()
    assert r.status == 200
    assert sha256(r.body) == sha256(body)
    assert upstream.stats()["handshakes"] == 1
