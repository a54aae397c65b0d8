"""Bad upstream responses: 502 before the head, a close (never a hang) after it."""

import time

from harness import RawConn, assert_tlslift_error, build_request, payload


def test_garbage_response_502(daemon, upstream):
    with RawConn(daemon.port) as c:
        c.send(build_request("GET", "/garbage"))
        r = c.read_response()
        assert_tlslift_error(r, 502)
    daemon.assert_serving(upstream)


def test_upstream_closes_without_response_502(daemon, upstream):
    with RawConn(daemon.port) as c:
        c.send(build_request("POST", "/drop", [("Content-Length", "3")], b"abc"))
        r = c.read_response()
        assert_tlslift_error(r, 502)
    # A POST is never replayed on another connection.
    assert [h["path"] for h in upstream.heads] == ["/drop"]
    daemon.assert_serving(upstream)


def test_cut_body_closes_client(daemon, upstream):
    """Content-Length promised 2N, N arrived: the client sees a close, not a full body and not a hang."""
    n = 50000
    with RawConn(daemon.port) as c:
        c.send(build_request("GET", "/cut/%d" % n))
        t0 = time.monotonic()
        data = c.read_until_close(5)
        took = time.monotonic() - t0
    assert data.startswith(b"HTTP/1.1 200"), data[:100]
    head, _, body = data.partition(b"\r\n\r\n")
    assert body == payload(n) or (b"chunked" in head.lower() and len(body) < 2 * n + 1000)
    assert took < 5
    daemon.assert_serving(upstream)
    acc = daemon.wait_access(2)
    assert acc[0]["status"] == "200" and acc[0]["reason"] != "-", [a["_line"] for a in acc]


def test_response_with_two_content_lengths_502(daemon, upstream):
    with RawConn(daemon.port) as c:
        c.send(build_request("GET", "/twocl"))
        r = c.read_response()
        assert_tlslift_error(r, 502)
    daemon.assert_serving(upstream)


def test_response_with_cl_and_te_not_relayed_ambiguously(daemon, upstream):
    """Content-Length + Transfer-Encoding from the upstream: a 502, or one framing toward the client."""
    with RawConn(daemon.port) as c:
        c.send(build_request("GET", "/clte"))
        r = c.read_response()
    if r.status == 502:
        assert_tlslift_error(r, 502)
    else:
        assert not (r.has_header("Content-Length") and r.has_header("Transfer-Encoding")), r.headers
        assert r.body == b"abc"
    daemon.assert_serving(upstream)
