"""Expect: 100-continue, the way .NET's HttpWebRequest/WebClient use it.

The client sends the head, waits (about 350 ms in .NET) for 100 Continue,
then sends the body. tlslift must send the 100 without the body in hand.
"""

import time

from harness import RawConn, build_request, payload, sha256


def _head(length, version="HTTP/1.1", extra=()):
    return build_request("POST", "/entries", [("Content-Type", "application/json; charset=utf-8"),
                                              ("Expect", "100-continue"),
                                              ("Content-Length", str(length)), *extra],
                         version=version)


def test_100_continue_before_body(daemon, upstream):
    body = b'{"message":"hello from a legacy app"}'
    with RawConn(daemon.port) as c:
        c.send(_head(len(body)))
        t0 = time.monotonic()
        first = c.recv_some(2.0)
        elapsed = time.monotonic() - t0
        assert first.startswith(b"HTTP/1.1 100"), "no 100 Continue within 2 s (got %r)" % first
        assert first.startswith(b"HTTP/1.1 100 Continue\r\n")
        assert elapsed < 1.0, "100 Continue took %.2f s (.NET waits 350 ms)" % elapsed
        # Only the interim response so far: nothing final before the body.
        assert first.count(b"HTTP/1.1 ") == 1 and first.endswith(b"\r\n\r\n"), first
        c.buf = bytearray()
        c.send(body)
        r = c.read_response()
    assert r.status == 200
    assert upstream.stats()["requests"] == 1
    rec = upstream.requests[0]
    assert rec["body_sha256"] == sha256(body)
    assert rec["method"] == "POST" and rec["path"] == "/entries"


def test_100_continue_large_body(daemon, upstream):
    body = payload(1024 * 1024)
    with RawConn(daemon.port, timeout=30) as c:
        c.send(build_request("POST", "/mirror", [("Expect", "100-continue"),
                                                 ("Content-Length", str(len(body)))]))
        first = c.recv_some(2.0)
        assert first.startswith(b"HTTP/1.1 100"), first
        c.buf = bytearray(first.split(b"\r\n\r\n", 1)[1])
        c.send(body)
        r = c.read_response(timeout=30)
    assert r.status == 200
    assert sha256(r.body) == sha256(body)


def test_body_sent_without_waiting(daemon, upstream):
    """A client that sends the body at once still gets one final response (after any 100)."""
    body = b"x" * 5000
    with RawConn(daemon.port) as c:
        c.send(build_request("POST", "/mirror", [("Expect", "100-continue"),
                                                 ("Content-Length", str(len(body)))], body))
        r = c.read_response()
        assert r.status == 200
        assert r.body == body
        assert all(s == 100 for s, _, _ in r.interim)
        # Nothing else arrives on the connection (no stray second 100 after the final response).
        c.send(build_request("GET", "/echo/next"))
        r2 = c.read_response()
        assert r2.status == 200 and not r2.interim
    assert [q["path"] for q in upstream.requests] == ["/mirror", "/echo/next"]


def test_no_100_for_http10(daemon, upstream):
    """HTTP/1.0 clients never get a 1xx response."""
    body = b"abc"
    with RawConn(daemon.port) as c:
        c.send(_head(len(body), version="HTTP/1.0") + body)
        data = c.read_until_close(10)
    assert not data.startswith(b"HTTP/1.1 100") and b" 100 Continue" not in data
    assert data.split(b" ", 2)[1] == b"200"
    assert upstream.requests[-1]["body_sha256"] == sha256(body)


def test_expect_with_zero_length(daemon, upstream):
    with RawConn(daemon.port) as c:
        c.send(_head(0))
        r = c.read_response(timeout=5)
    assert r.status == 200
    assert upstream.requests[-1]["body_len"] == 0


def test_dotnet_webclient_sequence(daemon, upstream):
    """What HttpWebRequest sends: Connection: Keep-Alive, Expect, a wait for 100, then the body; twice."""
    with RawConn(daemon.port) as c:
        for i in range(2):
            body = b'{"OccurredOn":"2026-12-03T18:09:51Z","Details":{"n":%d}}' % i
            hdrs = [("X-ApiKey", "secret123"), ("Content-Type", "application/json; charset=utf-8"),
                    ("Content-Length", str(len(body))), ("Expect", "100-continue")]
            if i == 0:
                hdrs.append(("Connection", "Keep-Alive"))
            c.send(build_request("POST", "/entries", hdrs, host="127.0.0.1:%d" % daemon.port))
            first = c.recv_some(0.35)  # .NET's wait
            assert first.startswith(b"HTTP/1.1 100 Continue\r\n"), (i, first)
            c.buf = bytearray(first.split(b"\r\n\r\n", 1)[1])
            c.send(body)
            r = c.read_response()
            assert r.status == 200, (i, r)
    assert [q["body_sha256"] for q in upstream.requests] == [
        sha256(b'{"OccurredOn":"2026-12-03T18:09:51Z","Details":{"n":%d}}' % i) for i in range(2)]
    assert upstream.stats()["handshakes"] == 1
