"""Bodies cross tlslift byte for byte, both ways, with either framing.

Request bodies go to /mirror (the upstream sends back what it received) and
the upstream records the sha256 it saw; response bodies come from /size/N
(Content-Length) and /chunked/N (chunked), whose bytes are known.
"""

import pytest

from harness import RawConn, build_request, chunk_encode, payload, sha256

SIZES = [0, 1, 64 * 1024, 1024 * 1024, 10 * 1024 * 1024]
IDS = ["0B", "1B", "64KiB", "1MiB", "10MiB"]


def _send_streaming(conn, data, piece=256 * 1024):
    for i in range(0, len(data), piece):
        conn.send(data[i:i + piece])


@pytest.mark.parametrize("size", SIZES, ids=IDS)
@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_request_body(daemon, upstream, size, framing):
    body = payload(size)
    if framing == "length":
        req = build_request("POST", "/mirror", [("Content-Length", str(size))], body)
    else:
        req = build_request("POST", "/mirror", [("Transfer-Encoding", "chunked")], chunk_encode(body))
    with RawConn(daemon.port, timeout=30) as c:
        _send_streaming(c, req)
        r = c.read_response(timeout=30)
    assert r.status == 200, r
    # What the upstream received ...
    rec = upstream.requests[-1]
    assert rec["body_len"] == size
    assert rec["body_sha256"] == sha256(body)
    assert upstream.stats()["requests"] == 1
    # ... and what came back.
    assert len(r.body) == size
    assert sha256(r.body) == sha256(body)


@pytest.mark.parametrize("size", SIZES, ids=IDS)
@pytest.mark.parametrize("mode", ["size", "chunked"])
def test_response_body(daemon, upstream, size, mode):
    with RawConn(daemon.port, timeout=30) as c:
        c.send(build_request("GET", "/%s/%d" % (mode, size)))
        r = c.read_response(timeout=30)
    assert r.status == 200, r
    assert len(r.body) == size
    assert sha256(r.body) == sha256(payload(size))
    assert r.header("X-Body-Sha256") == sha256(payload(size))


def test_many_bodies_on_one_connection(daemon, upstream):
    """Keep-alive client: several bodies back to back, nothing bleeds between them."""
    with RawConn(daemon.port, timeout=30) as c:
        for i, size in enumerate([5, 0, 70000, 1, 300000]):
            body = payload(size + i)
            if i % 2:
                c.send(build_request("POST", "/mirror", [("Transfer-Encoding", "chunked")], chunk_encode(body)))
            else:
                c.send(build_request("POST", "/mirror", [("Content-Length", str(len(body)))], body))
            r = c.read_response(timeout=30)
            assert r.status == 200
            assert r.body == body
    assert [q["body_sha256"] for q in upstream.requests] == \
        [sha256(payload(s + i)) for i, s in enumerate([5, 0, 70000, 1, 300000])]


def test_chunked_request_forwarded_with_one_framing(daemon, upstream):
    """A chunked request reaches the upstream with exactly one framing."""
    body = payload(10000)
    with RawConn(daemon.port) as c:
        c.send(build_request("POST", "/echo", [("Transfer-Encoding", "chunked")], chunk_encode(body)))
        r = c.read_response()
    assert r.status == 200
    hdrs = {k.lower(): v for k, v in upstream.heads[-1]["headers"]}
    names = [k.lower() for k, _ in upstream.heads[-1]["headers"]]
    assert not ("transfer-encoding" in hdrs and "content-length" in hdrs)
    assert names.count("transfer-encoding") <= 1 and names.count("content-length") <= 1
    if "transfer-encoding" in hdrs:
        assert hdrs["transfer-encoding"].strip().lower() == "chunked"
    else:
        assert hdrs["content-length"] == "10000"
    assert upstream.requests[-1]["body_sha256"] == sha256(body)
