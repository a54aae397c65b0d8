"""Limits: request line, head size, header count, slow head, connections.

Each refusal is one of tlslift's own responses, the upstream sees nothing,
and the daemon still serves a normal request afterwards.
"""

import time

from harness import RawConn, assert_tlslift_error, build_request, exchange, wait_until

LIMITS = {"max_request_line": "1024", "max_header_size": "4096", "max_headers": "20"}


def _refused(d, upstream, req, status):
    with RawConn(d.port) as c:
        try:
            c.send(req)
        except (BrokenPipeError, ConnectionResetError):
            pass  # tlslift may answer and close before the whole head is sent
        r = c.read_response()
        assert_tlslift_error(r, status)
        assert c.closed_within(5)
    assert upstream.stats()["heads"] == 0
    d.assert_serving(upstream)
    acc = d.wait_access(2)
    assert any(a["status"] == str(status) and a["reason"] != "-" for a in acc), [a["_line"] for a in acc]


def test_request_line_too_long_414(make_daemon, upstream):
    d = make_daemon(upstream, route=LIMITS)
    _refused(d, upstream, build_request("GET", "/" + "a" * 2000), 414)


def test_request_line_under_limit_ok(make_daemon, upstream):
    d = make_daemon(upstream, route=LIMITS)
    path = "/echo/" + "a" * (1000 - len("GET /echo/ HTTP/1.1"))
    r = exchange(d.port, build_request("GET", path))
    assert r.status == 200
    assert upstream.heads[-1]["path"] == path


def test_head_too_large_431(make_daemon, upstream):
    d = make_daemon(upstream, route=LIMITS)
    _refused(d, upstream, build_request("GET", "/echo", [("X-Big", "b" * 5000)]), 431)


def test_head_under_limit_ok(make_daemon, upstream):
    d = make_daemon(upstream, route=LIMITS)
    r = exchange(d.port, build_request("GET", "/echo", [("X-Big", "b" * 3500)]))
    assert r.status == 200


def test_head_size_counts_many_small_headers(make_daemon, upstream):
    """max_header_size covers the whole head, not one header line."""
    d = make_daemon(upstream, route={"max_header_size": "4096", "max_headers": "100"})
    hdrs = [("X-H%02d" % i, "v" * 200) for i in range(30)]  # ~6.5 KB in total, each line small
    _refused(d, upstream, build_request("GET", "/echo", hdrs), 431)


def test_too_many_headers_431(make_daemon, upstream):
    d = make_daemon(upstream, route=LIMITS)
    hdrs = [("X-N%02d" % i, "v") for i in range(30)]
    _refused(d, upstream, build_request("GET", "/echo", hdrs), 431)


def test_header_count_under_limit_ok(make_daemon, upstream):
    d = make_daemon(upstream, route=LIMITS)
    hdrs = [("X-N%02d" % i, "v") for i in range(15)]
    assert exchange(d.port, build_request("GET", "/echo", hdrs)).status == 200


def test_limits_from_global_section(make_daemon, upstream):
    """A limit in [tlslift] is the default for routes that do not set it."""
    d = make_daemon(upstream, glob={"max_request_line": "512"})
    _refused(d, upstream, build_request("GET", "/" + "a" * 800), 414)


def test_slow_head_408(make_daemon, upstream):
    d = make_daemon(upstream, route={"client_header_timeout": "1"})
    with RawConn(d.port) as c:
        c.send(b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ")
        t0 = time.monotonic()
        r = c.read_response(timeout=6)
        took = time.monotonic() - t0
        assert_tlslift_error(r, 408)
        assert 0.8 <= took < 5, took
        assert c.closed_within(3)
    assert upstream.stats()["heads"] == 0
    d.assert_serving(upstream)


def test_head_timeout_is_not_reset_by_trickling(make_daemon, upstream):
    """client_header_timeout runs from the first byte: trickling bytes does not extend it."""
    d = make_daemon(upstream, route={"client_header_timeout": "1"})
    with RawConn(d.port) as c:
        t0 = time.monotonic()
        got = b""
        for ch in b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: abcdefghijklmnop":
            try:
                c.send(bytes([ch]))
            except (BrokenPipeError, ConnectionResetError):
                break
            got = c.recv_some(0.2)
            if got or time.monotonic() - t0 > 5:
                break
        took = time.monotonic() - t0
    assert got.startswith(b"HTTP/1.1 408"), got
    assert took < 3, took


def test_max_connections_503(make_daemon, upstream):
    d = make_daemon(upstream, glob={"max_connections": "2"})
    idle = [RawConn(d.port), RawConn(d.port)]
    try:
        time.sleep(0.2)
        with RawConn(d.port) as c:
            try:
                c.send(build_request("GET", "/echo"))
            except (BrokenPipeError, ConnectionResetError):
                pass
            r = c.read_response()
            assert_tlslift_error(r, 503)
            assert c.closed_within(5)
        assert upstream.stats()["heads"] == 0
        # The idle connections are still usable.
        idle[0].send(build_request("GET", "/echo/idle0"))
        assert idle[0].read_response().status == 200
    finally:
        for c in idle:
            c.close()

    # Once they are gone, new clients are served again.
    def served():
        try:
            return exchange(d.port, build_request("GET", "/echo"), timeout=3).status == 200
        except Exception:  # noqa: BLE001
            return False
    assert wait_until(served, 5, interval=0.1)
    assert d.alive()


def test_max_connections_counts_all_routes(make_daemon, make_upstream, pki):
    from harness import free_port
    a, b = make_upstream(), make_upstream()
    pa, pb = free_port(), free_port()
    d = make_daemon(glob={"max_connections": "2"}, routes=[
        ("a", {"listen": "127.0.0.1:%d" % pa, "upstream": a.url, "upstream_ca_file": str(pki.ca)}),
        ("b", {"listen": "127.0.0.1:%d" % pb, "upstream": b.url, "upstream_ca_file": str(pki.ca)}),
    ])
    d.wait_listening()
    idle = [RawConn(pa), RawConn(pb)]
    try:
        time.sleep(0.2)
        for port in (pa, pb):
            with RawConn(port) as c:
                try:
                    c.send(build_request("GET", "/echo"))
                except (BrokenPipeError, ConnectionResetError):
                    pass
                assert_tlslift_error(c.read_response(), 503)
    finally:
        for c in idle:
            c.close()
    assert a.stats()["heads"] == 0 and b.stats()["heads"] == 0
