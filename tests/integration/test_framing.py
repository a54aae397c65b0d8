"""Response framing toward HTTP/1.1 and HTTP/1.0 clients; HEAD, 204, 304; pipelining."""

import json
import socket
import time

import pytest

from harness import RawConn, build_request, chunk_encode, payload, sha256


def _next_ok(c):
    """The connection is still in sync: one more request gets its own answer."""
    c.send(build_request("GET", "/echo/sync"))
    r = c.read_response()
    assert r.status == 200
    assert json.loads(r.body)["path"] == "/echo/sync"


def test_head_has_no_body(daemon, upstream):
    with RawConn(daemon.port) as c:
        c.send(build_request("HEAD", "/size/1000"))
        r = c.read_response(method="HEAD")
        assert r.status == 200
        assert r.header("Content-Length") == "1000"
        assert c.recv_some(0.3) == b"", "body bytes after a HEAD response"
        _next_ok(c)
    assert upstream.heads[0]["method"] == "HEAD"


def test_head_of_chunked_resource(daemon, upstream):
    with RawConn(daemon.port) as c:
        c.send(build_request("HEAD", "/chunked/5000"))
        r = c.read_response(method="HEAD")
        assert r.status == 200
        assert c.recv_some(0.3) == b""
        _next_ok(c)


@pytest.mark.parametrize("code", [204, 304])
def test_no_body_statuses(daemon, upstream, code):
    with RawConn(daemon.port) as c:
        c.send(build_request("GET", "/status/%d" % code))
        r = c.read_response()
        assert r.status == code
        assert not r.has_header("Transfer-Encoding"), r.headers
        assert r.header("Content-Length") in (None, "0")
        assert c.recv_some(0.3) == b""
        _next_ok(c)


def test_304_with_content_length_has_no_body(daemon, upstream):
    with RawConn(daemon.port) as c:
        c.send(build_request("GET", "/304cl", [("If-None-Match", '"v1"')]))
        r = c.read_response(timeout=5)
        assert r.status == 304
        assert c.recv_some(0.3) == b""
        _next_ok(c)
    # The pooled upstream connection was not left waiting for 1234 body bytes.
    assert upstream.stats()["handshakes"] == 1


def test_other_status_passed_through(daemon, upstream):
    with RawConn(daemon.port) as c:
        c.send(build_request("GET", "/status/418"))
        r = c.read_response()
    assert r.status == 418
    assert r.body == b"status 418\n"


@pytest.mark.parametrize("mode", ["size", "chunked", "close", "close10"])
def test_http11_client(daemon, upstream, mode):
    n = 100000
    with RawConn(daemon.port) as c:
        c.send(build_request("GET", "/%s/%d" % (mode, n)))
        r = c.read_response()
        assert r.status == 200
        assert r.version == "HTTP/1.1"
        assert sha256(r.body) == sha256(payload(n))
        if r.framing == "close":
            assert c.eof
        else:
            # Length-delimited or chunked: the client connection stays usable.
            _next_ok(c)


@pytest.mark.parametrize("mode", ["size", "chunked", "close", "close10"])
def test_http10_client(daemon, upstream, mode):
    """HTTP/1.0 clients never get chunked; the body ends by length or by close."""
    n = 100000
    with RawConn(daemon.port) as c:
        c.send(build_request("GET", "/%s/%d" % (mode, n), version="HTTP/1.0"))
        r = c.read_response()
        assert r.status == 200
        assert "chunked" not in ",".join(r.header_all("Transfer-Encoding")).lower(), r.headers
        assert sha256(r.body) == sha256(payload(n))
        # HTTP/1.0 without keep-alive: tlslift closes after the response.
        assert c.closed_within(5)


def test_http10_keepalive_client(daemon, upstream):
    with RawConn(daemon.port) as c:
        c.send(build_request("GET", "/size/10", [("Connection", "keep-alive")], version="HTTP/1.0"))
        r = c.read_response()
        assert r.status == 200 and r.body == payload(10)
        if r.header("Connection", "").lower() == "keep-alive":
            assert r.header("Content-Length") == "10"
            c.send(build_request("GET", "/size/11", [("Connection", "keep-alive")], version="HTTP/1.0"))
            assert c.read_response().body == payload(11)
        else:
            assert c.closed_within(5)


def test_http10_request_body(daemon, upstream):
    """HTTP/1.0 request with a Content-Length body is forwarded intact."""
    body = b"legacy=1"
    with RawConn(daemon.port) as c:
        c.send(build_request("POST", "/mirror", body=body, version="HTTP/1.0"))
        r = c.read_response()
        assert r.status == 200 and r.body == body


def test_pipelined_requests_answered_in_order(daemon, upstream):
    reqs = [
        build_request("GET", "/echo/1"),
        build_request("POST", "/mirror", [("Content-Length", "5")], b"hello"),
        build_request("HEAD", "/size/50"),
        build_request("GET", "/chunked/3000"),
        build_request("GET", "/status/204"),
        build_request("GET", "/echo/6"),
    ]
    with RawConn(daemon.port) as c:
        c.send(b"".join(reqs))
        r1 = c.read_response()
        r2 = c.read_response()
        r3 = c.read_response(method="HEAD")
        r4 = c.read_response()
        r5 = c.read_response()
        r6 = c.read_response()
    assert json.loads(r1.body)["path"] == "/echo/1"
    assert r2.body == b"hello"
    assert r3.status == 200 and r3.header("Content-Length") == "50" and r3.body == b""
    assert r4.body == payload(3000)
    assert r5.status == 204
    assert json.loads(r6.body)["path"] == "/echo/6"
    assert [h["path"] for h in upstream.heads] == ["/echo/1", "/mirror", "/size/50", "/chunked/3000",
                                                  "/status/204", "/echo/6"]


def test_pipelined_with_close_last(daemon, upstream):
    reqs = [build_request("GET", "/echo/a"), build_request("GET", "/echo/b", [("Connection", "close")]),
            build_request("GET", "/echo/never")]
    with RawConn(daemon.port) as c:
        c.send(b"".join(reqs))
        assert json.loads(c.read_response().body)["path"] == "/echo/a"
        r = c.read_response()
        assert json.loads(r.body)["path"] == "/echo/b"
        assert c.closed_within(5)
    assert "/echo/never" not in [h["path"] for h in upstream.heads]


def test_response_version_is_http11(daemon, upstream):
    """tlslift speaks HTTP/1.1 even when the upstream answered HTTP/1.0."""
    with RawConn(daemon.port) as c:
        c.send(build_request("GET", "/close10/10"))
        r = c.read_response()
    assert r.version == "HTTP/1.1"
    assert r.body == payload(10)


def test_response_in_tiny_tls_records(daemon, upstream):
    """The upstream writes its response 7 bytes at a time (one TLS record each)."""
    with RawConn(daemon.port) as c:
        c.send(build_request("GET", "/trickle/3000"))
        r = c.read_response(timeout=10)
        assert r.status == 200
        assert r.body == payload(3000)
        _next_ok(c)


def test_interim_1xx_from_upstream(daemon, upstream):
    """A 103 before the final response: the client ends up with the final 200 and its body."""
    with RawConn(daemon.port) as c:
        c.send(build_request("GET", "/earlyhints"))
        r = c.read_response()
        assert r.status == 200
        assert r.body == b"final\n"
        assert all(s == 103 for s, _, _ in r.interim)
        _next_ok(c)


def test_request_sent_byte_by_byte(daemon, upstream):
    """A head and a chunked body that arrive one byte per read are parsed the same."""
    body = b"hello, slow world"
    req = build_request("POST", "/mirror", [("Transfer-Encoding", "chunked")],
                        chunk_encode(body, sizes=(3, 5, 9)))
    with RawConn(daemon.port) as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for b in req:
            c.send(bytes([b]))
            time.sleep(0.002)
        r = c.read_response()
    assert r.status == 200
    assert r.body == body
    assert upstream.requests[-1]["body_sha256"] == sha256(body)


@pytest.mark.parametrize("pool", ["fresh", "pooled"])
def test_many_tiny_chunks(daemon, upstream, pool):
    """10000 one-byte chunks (60 KB on the wire), on a new or on a pooled upstream connection."""
    if pool == "pooled":
        with RawConn(daemon.port) as c:
            c.send(build_request("GET", "/echo/warm"))
            assert c.read_response().status == 200
    body = payload(10000)
    req = build_request("POST", "/mirror", [("Transfer-Encoding", "chunked")], chunk_encode(body, sizes=(1,)))
    with RawConn(daemon.port, timeout=10) as c:
        c.send(req)
        r = c.read_response()
    assert r.status == 200
    assert sha256(r.body) == sha256(body)
    assert upstream.stats()["handshakes"] == 1
