"""Clients that go away mid-request or mid-response: the daemon survives and the pool stays clean.

If tlslift returned an upstream connection to the pool with part of a
response still unread, the next request would get that garbage instead of
its own answer.
"""

import json
import socket
import struct
import time

from harness import RawConn, build_request, payload, wait_until


def _rst(c):
    """Close with a TCP reset (SO_LINGER 0), like a killed process."""
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()


def test_abort_during_request_body(daemon, upstream):
    with RawConn(daemon.port) as c:
        c.send(build_request("POST", "/mirror", [("Content-Length", "100000")]) + b"x" * 5000)
        time.sleep(0.2)
    time.sleep(0.2)
    assert upstream.stats()["requests"] == 0  # never a complete request upstream
    daemon.assert_serving(upstream)


def test_abort_during_response_body_keeps_pool_clean(daemon, upstream):
    n = 10 * 1024 * 1024
    for close in (RawConn.close, _rst):
        c = RawConn(daemon.port)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        c.send(build_request("GET", "/size/%d" % n))
        got = c.recv_some(2)
        assert got.startswith(b"HTTP/1.1 200")
        close(c)
        time.sleep(0.2)
        for i in range(3):
            with RawConn(daemon.port) as c2:
                c2.send(build_request("GET", "/echo/after-abort-%d" % i))
                r = c2.read_response()
            assert r.status == 200
            assert json.loads(r.body)["path"] == "/echo/after-abort-%d" % i
    assert daemon.alive()


def test_abort_before_response(daemon, upstream):
    c = RawConn(daemon.port)
    c.send(build_request("GET", "/delay/500"))
    # The upstream has the request and is about to answer when the client goes.
    assert wait_until(lambda: upstream.stats()["heads"] >= 1, 3)
    _rst(c)
    time.sleep(0.7)
    for i in range(3):
        with RawConn(daemon.port) as c2:
            c2.send(build_request("GET", "/echo/%d" % i))
            r = c2.read_response()
        assert r.status == 200 and json.loads(r.body)["path"] == "/echo/%d" % i
    assert daemon.alive()


def test_half_close_after_request(daemon, upstream):
    """A client that sends its request and shuts down its write side still gets the answer."""
    with RawConn(daemon.port) as c:
        c.send(build_request("GET", "/size/20000", [("Connection", "close")]))
        c.sock.shutdown(socket.SHUT_WR)
        r = c.read_response()
    assert r.status == 200 and r.body == payload(20000)
