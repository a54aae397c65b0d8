"""Upstream and client timeouts: 504 before a response head, close after; 408 for slow clients."""

import time

from harness import RawConn, assert_tlslift_error, build_request, wait_until


def _timed(port, req, timeout=10):
    with RawConn(port, timeout=timeout) as c:
        t0 = time.monotonic()
        c.send(req)
        r = c.read_response()
        return r, time.monotonic() - t0


def test_stalled_upstream_gets_504(make_upstream, make_daemon):
    up = make_upstream(stall=True)
    d = make_daemon(up, route={"upstream_response_timeout": "1"})
    r, took = _timed(d.port, build_request("GET", "/echo"))
    assert_tlslift_error(r, 504)
    assert 0.8 <= took < 5, took
    assert up.stats()["heads"] == 1
    assert d.alive()
    acc = d.wait_access(1)
    assert acc[-1]["status"] == "504" and acc[-1]["reason"] != "-"


def test_stalled_request_then_daemon_still_serves(make_daemon, upstream):
    d = make_daemon(upstream, route={"upstream_response_timeout": "1"})
    r, took = _timed(d.port, build_request("GET", "/stall"))
    assert_tlslift_error(r, 504)
    assert took < 5
    d.assert_serving(upstream)


def test_response_timeout_in_milliseconds(make_upstream, make_daemon):
    up = make_upstream(stall=True)
    d = make_daemon(up, route={"upstream_response_timeout": "300ms"})
    r, took = _timed(d.port, build_request("GET", "/echo"))
    assert r.status == 504
    assert took < 0.9 + 0.5, took


def test_stall_after_response_head_closes(make_daemon, upstream):
    """After the head was relayed, a stalled upstream ends in a close (no second status line)."""
    d = make_daemon(upstream, route={"upstream_response_timeout": "1"})
    with RawConn(d.port) as c:
        c.send(build_request("GET", "/stallbody"))
        t0 = time.monotonic()
        data = c.read_until_close(6)
        took = time.monotonic() - t0
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
    head, _, body = data.partition(b"\r\n\r\n")
    assert body.startswith(b"abc") and len(body) < 1000
    assert b"HTTP/1.1 504" not in data
    assert 0.8 <= took < 6, took
    d.assert_serving(upstream)


def test_tls_handshake_timeout_gets_504(make_daemon, blackhole):
    d = make_daemon(upstream_url=blackhole.url, route={"upstream_tls_timeout": "1"})
    r, took = _timed(d.port, build_request("GET", "/echo"))
    assert_tlslift_error(r, 504)
    assert 0.8 <= took < 5, took
    assert len(blackhole.accepted) >= 1


def test_connect_timeout_gets_504(make_daemon, tarpit):
    d = make_daemon(upstream_url=tarpit.url, route={"upstream_connect_timeout": "1"})
    r, took = _timed(d.port, build_request("GET", "/echo"))
    assert_tlslift_error(r, 504)
    assert 0.8 <= took < 5, took


def test_client_body_timeout_gets_408(make_daemon, upstream):
    d = make_daemon(upstream, route={"client_body_timeout": "1"})
    with RawConn(d.port) as c:
        c.send(build_request("POST", "/mirror", [("Content-Length", "100")]) + b"0123456789")
        t0 = time.monotonic()
        r = c.read_response(timeout=6)
        took = time.monotonic() - t0
        assert_tlslift_error(r, 408)
        assert 0.8 <= took < 5, took
        assert c.closed_within(3)
    # The upstream never got a complete request.
    assert upstream.stats()["requests"] == 0
    d.assert_serving(upstream)


def test_idle_keepalive_client_closed(make_daemon, upstream):
    d = make_daemon(upstream, route={"idle_timeout": "1"})
    with RawConn(d.port) as c:
        c.send(build_request("GET", "/echo"))
        assert c.read_response().status == 200
        t0 = time.monotonic()
        assert c.closed_within(5), "keep-alive client not closed after idle_timeout"
        assert 0.8 <= time.monotonic() - t0 < 4
    d.assert_serving(upstream)


def test_idle_timeout_does_not_cut_active_client(make_daemon, upstream):
    d = make_daemon(upstream, route={"idle_timeout": "1"})
    with RawConn(d.port) as c:
        for _ in range(4):
            c.send(build_request("GET", "/echo"))
            assert c.read_response().status == 200
            time.sleep(0.5)
    assert wait_until(lambda: upstream.stats()["requests"] == 4, 2)
