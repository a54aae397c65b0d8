"""Request smuggling shapes: 400, connection closed, nothing forwarded, daemon still serving.

Each payload carries a second request ("GET /smuggled") that would reach the
upstream if tlslift and the upstream disagreed about where the first ends.
"""

import pytest

from harness import RawConn, assert_tlslift_error

H = b"Host: 127.0.0.1\r\n"
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

CASES = {
    "cl_and_te": b"POST /echo HTTP/1.1\r\n" + H +
                 b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "te_and_cl": b"POST /echo HTTP/1.1\r\n" + H +
                 b"Transfer-Encoding: chunked\r\nContent-Length: 50\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "two_content_lengths": b"POST /echo HTTP/1.1\r\n" + H +
                           b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!" + SMUGGLED,
    "content_length_list": b"POST /echo HTTP/1.1\r\n" + H +
                           b"Content-Length: 5, 6\r\n\r\nhello!" + SMUGGLED,
    "bad_chunk_size": b"POST /echo HTTP/1.1\r\n" + H +
                      b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n" + SMUGGLED,
    "chunk_size_overflow": b"POST /echo HTTP/1.1\r\n" + H +
                           b"Transfer-Encoding: chunked\r\n\r\n1000000000000000000000005\r\nhello\r\n0\r\n\r\n"
                           + SMUGGLED,
    "te_chunked_identity": b"POST /echo HTTP/1.1\r\n" + H +
                           b"Transfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + SMUGGLED,
    "te_not_chunked_last": b"POST /echo HTTP/1.1\r\n" + H +
                           b"Transfer-Encoding: identity\r\n\r\n" + SMUGGLED,
    "obs_fold": b"POST /echo HTTP/1.1\r\n" + H +
                b"X-Folded: a\r\n b\r\nContent-Length: 5\r\n\r\nhello" + SMUGGLED,
    "obs_fold_te": b"POST /echo HTTP/1.1\r\n" + H +
                   b"Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "space_before_colon": b"POST /echo HTTP/1.1\r\n" + H +
                          b"Content-Length : 5\r\n\r\nhello" + SMUGGLED,
    "space_before_colon_te": b"POST /echo HTTP/1.1\r\n" + H +
                             b"Transfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "content_length_not_a_number": b"POST /echo HTTP/1.1\r\n" + H +
                                   b"Content-Length: 5x\r\n\r\nhello" + SMUGGLED,
    "content_length_plus": b"POST /echo HTTP/1.1\r\n" + H +
                           b"Content-Length: +5\r\n\r\nhello" + SMUGGLED,
    "nul_in_header": b"POST /echo HTTP/1.1\r\n" + H +
                     b"X-Nul: a\x00b\r\nContent-Length: 5\r\n\r\nhello" + SMUGGLED,
    "two_hosts": b"GET /echo HTTP/1.1\r\n" + H + b"Host: evil.example\r\n\r\n" + SMUGGLED,
    "http11_without_host": b"GET /echo HTTP/1.1\r\nX-A: b\r\n\r\n" + SMUGGLED,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_smuggling_shape_rejected(daemon, upstream, name):
    with RawConn(daemon.port) as c:
        try:
            c.send(CASES[name])
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = c.read_response()
        assert_tlslift_error(r, 400)
        assert c.closed_within(5), "connection left open after a 400"
    s = upstream.stats()
    assert s["heads"] == 0, "forwarded upstream: %r" % [h["path"] for h in upstream.heads]
    daemon.assert_serving(upstream)
    assert [h["path"] for h in upstream.heads] == ["/echo/after"]


def test_valid_chunked_with_extension_and_trailer_is_not_rejected(daemon, upstream):
    """Control: a well-formed but unusual chunked request passes (chunk extension, trailer)."""
    with RawConn(daemon.port) as c:
        c.send(b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
               b"5;ext=1\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n")
        r = c.read_response()
    assert r.status == 200
    assert upstream.requests[-1]["body"] == "hello"


@pytest.mark.parametrize("name,must,must_not", [
    ("two_content_lengths", "content-length", "transfer-encoding"),
    ("content_length_list", "content-length", "transfer-encoding"),
    ("te_chunked_identity", "transfer-encoding", None),
    ("bad_chunk_size", "chunk", None),
])
def test_reason_names_the_problem(daemon, upstream, name, must, must_not):
    """The one-line reason says what was wrong with the request."""
    with RawConn(daemon.port) as c:
        c.send(CASES[name])
        r = c.read_response()
    assert r.status == 400
    reason = r.body.decode("latin-1").lower()
    assert must in reason, reason
    if must_not:
        assert must_not not in reason, reason
