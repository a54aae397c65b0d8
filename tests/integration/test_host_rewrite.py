"""Host is rewritten to the upstream (or preserved); hop-by-hop headers stop at tlslift."""

import json

import pytest

from harness import RawConn, build_request, chunk_encode, payload, sha256


def _upstream_headers(upstream):
    return upstream.heads[-1]["headers"]


def _values(headers, name):
    return [v for k, v in headers if k.lower() == name.lower()]


def test_host_rewritten_to_upstream(daemon, upstream):
    with RawConn(daemon.port) as c:
        c.send(build_request("GET", "/echo", host="127.0.0.1:%d" % daemon.port))
        r = c.read_response()
    assert r.status == 200
    hosts = _values(_upstream_headers(upstream), "Host")
    assert hosts == ["localhost:%d" % upstream.port]
    # The response body is the upstream's record: same thing seen end to end.
    assert ["Host", "localhost:%d" % upstream.port] in [[k.title(), v] for k, v in json.loads(r.body)["headers"]]


def test_host_rewritten_without_port_443(make_upstream, make_daemon):
    """The port is left out of Host when it is 443."""
    try:
        up = make_upstream(port=443)
    except OSError as e:
        pytest.skip("cannot bind 127.0.0.1:443 here: %s" % e)
    d = make_daemon(up)
    with RawConn(d.port) as c:
        c.send(build_request("GET", "/echo", host="127.0.0.1:%d" % d.port))
        r = c.read_response()
    assert r.status == 200
    assert _values(_upstream_headers(up), "Host") == ["localhost"]


def test_host_preserved(make_daemon, upstream):
    d = make_daemon(upstream, route={"host_header": "preserve"})
    with RawConn(d.port) as c:
        c.send(build_request("GET", "/echo", host="legacy.example:8080"))
        r = c.read_response()
    assert r.status == 200
    assert _values(_upstream_headers(upstream), "Host") == ["legacy.example:8080"]


def test_request_target_and_end_to_end_headers_kept(daemon, upstream):
    hdrs = [("User-Agent", "legacy/1.0"), ("X-ApiKey", "secret123"),
            ("Content-Type", "application/json; charset=utf-8"), ("Accept", "*/*"),
            ("X-Dup", "one"), ("X-Dup", "two")]
    with RawConn(daemon.port) as c:
        c.send(build_request("GET", "/entries/a%20b?x=1&y=%2F", hdrs))
        r = c.read_response()
    assert r.status == 200
    got = _upstream_headers(upstream)
    assert upstream.heads[-1]["path"] == "/entries/a%20b?x=1&y=%2F"
    assert upstream.heads[-1]["method"] == "GET"
    for k, v in hdrs[:4]:
        assert _values(got, k) == [v], k
    assert _values(got, "X-Dup") in (["one", "two"], ["one, two"])


def test_hop_by_hop_request_headers_not_forwarded(daemon, upstream):
    body = payload(3000)
    hdrs = [
        ("Connection", "keep-alive, X-Drop-Me"),
        ("Keep-Alive", "timeout=5, max=10"),
        ("Proxy-Connection", "keep-alive"),
        ("TE", "trailers, deflate"),
        ("Upgrade", "h2c"),
        ("X-Drop-Me", "private-to-this-hop"),
        ("X-Keep-Me", "end-to-end"),
        ("Transfer-Encoding", "chunked"),
    ]
    with RawConn(daemon.port) as c:
        c.send(build_request("POST", "/echo", hdrs, chunk_encode(body)))
        r = c.read_response()
    assert r.status == 200
    got = _upstream_headers(upstream)
    names = [k.lower() for k, _ in got]
    for gone in ("keep-alive", "proxy-connection", "te", "upgrade", "x-drop-me"):
        assert gone not in names, "%s was forwarded: %r" % (gone, got)
    # tlslift may send its own Connection header upstream, but not the client's tokens.
    for v in _values(got, "Connection"):
        assert "x-drop-me" not in v.lower()
    assert _values(got, "X-Keep-Me") == ["end-to-end"]
    # Transfer-Encoding is re-framed, never passed through with other codings.
    te = _values(got, "Transfer-Encoding")
    assert te in ([], ["chunked"])
    if not te:
        assert _values(got, "Content-Length") == [str(len(body))]
    assert upstream.requests[-1]["body_sha256"] == sha256(body)


def test_client_connection_close_not_forwarded(daemon, upstream):
    """A client's Connection: close ends the client connection, not the pooled upstream one."""
    with RawConn(daemon.port) as c:
        c.send(build_request("GET", "/echo", [("Connection", "close")]))
        r = c.read_response()
        assert r.status == 200
        assert c.closed_within(5)
    for v in _values(_upstream_headers(upstream), "Connection"):
        assert "close" not in v.lower()


def test_hop_by_hop_response_headers_not_forwarded(daemon, upstream):
    with RawConn(daemon.port) as c:
        c.send(build_request("GET", "/hopbyhop"))
        r = c.read_response()
    assert r.status == 200
    assert r.body == b"ok\n"
    assert not r.has_header("X-Resp-Drop"), r.headers
    assert not r.has_header("Keep-Alive"), r.headers
    assert not r.has_header("Proxy-Connection"), r.headers
    for v in r.header_all("Connection"):
        assert "x-resp-drop" not in v.lower()
    assert r.header("X-Resp-Keep") == "yes"


def test_host_rewrite_on_every_request_of_a_connection(daemon, upstream):
    with RawConn(daemon.port) as c:
        for h in ("a.example", "b.example:81", "127.0.0.1"):
            c.send(build_request("GET", "/echo", host=h))
            assert c.read_response().status == 200
    assert [_values(h["headers"], "Host") for h in upstream.heads] == \
        [["localhost:%d" % upstream.port]] * 3


def test_http10_request_without_host_gets_one(daemon, upstream):
    """Old HTTP/1.0 clients send no Host; the upstream (HTTP/1.1) still gets the upstream's."""
    with RawConn(daemon.port) as c:
        c.send(b"GET /echo/nohost HTTP/1.0\r\nUser-Agent: old\r\n\r\n")
        r = c.read_response()
    assert r.status == 200
    assert _values(_upstream_headers(upstream), "Host") == ["localhost:%d" % upstream.port]


def test_set_cookie_headers_not_merged(daemon, upstream):
    with RawConn(daemon.port) as c:
        c.send(build_request("GET", "/cookies"))
        r = c.read_response()
    assert r.status == 200
    assert r.header_all("Set-Cookie") == ["a=1; Path=/", "b=2; Expires=Wed, 09 Jun 2027 10:18:14 GMT"]
