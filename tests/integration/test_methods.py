"""Methods: CONNECT is refused with 405; the others are forwarded as they came."""

import pytest

from harness import RawConn, assert_tlslift_error, build_request, sha256


def test_connect_405(daemon, upstream):
    with RawConn(daemon.port) as c:
        c.send(b"CONNECT api.example:443 HTTP/1.1\r\nHost: api.example:443\r\n\r\n")
        r = c.read_response()
        assert_tlslift_error(r, 405)
        assert c.closed_within(5)
    assert upstream.stats()["heads"] == 0
    daemon.assert_serving(upstream)


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PROPFIND"])
def test_method_forwarded(daemon, upstream, method):
    body = b"" if method in ("GET", "DELETE", "OPTIONS") else b'{"a":1}'
    with RawConn(daemon.port) as c:
        c.send(build_request(method, "/echo/m", [("Content-Length", str(len(body)))] if body else [], body))
        r = c.read_response()
    if method == "PROPFIND":
        # An extension method: forwarded, or refused cleanly by tlslift (never a hang).
        assert r.status in (200, 400, 405, 501), r
        if r.status != 200:
            return
    assert r.status == 200
    rec = upstream.requests[-1]
    assert rec["method"] == method and rec["path"] == "/echo/m"
    assert rec["body_sha256"] == sha256(body)
