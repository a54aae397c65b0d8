"""The upstream pool: keep-alive reuse, session resumption, stale connections."""

import threading
import time

import pytest

from harness import RawConn, build_request, payload, sha256, wait_until


def _one(port, path="/echo", method="GET", body=b"", close=True):
    hdrs = [("Connection", "close")] if close else []
    with RawConn(port) as c:
        c.send(build_request(method, path, hdrs, body))
        r = c.read_response()
        if close:
            assert c.closed_within(5), "tlslift kept the client connection open after Connection: close"
    return r


def test_100_client_connections_few_handshakes(daemon, upstream):
    for i in range(100):
        r = _one(daemon.port, "/echo/%d" % i)
        assert r.status == 200, (i, r)
        assert r.header("Connection", "").lower() == "close"
    s = upstream.stats()
    assert s["requests"] == 100
    assert [h["path"] for h in upstream.heads] == ["/echo/%d" % i for i in range(100)]
    assert s["handshakes"] <= 5, s
    assert s["connections"] <= 5, s
    lines = daemon.wait_access(100)
    assert sum(1 for a in lines if a.get("reused") == "1") >= 95, [a["_line"] for a in lines[:5]]


def test_keepalive_client_many_requests(daemon, upstream):
    with RawConn(daemon.port) as c:
        for i in range(20):
            c.send(build_request("GET", "/echo/%d" % i))
            r = c.read_response()
            assert r.status == 200
    assert upstream.stats()["handshakes"] == 1


def test_parallel_clients_bounded_upstream(daemon, upstream):
    errors = []

    def worker(n):
        try:
            for i in range(10):
                r = _one(daemon.port, "/echo/%d/%d" % (n, i))
                if r.status != 200:
                    errors.append(r.status)
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    ts = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not errors
    s = upstream.stats()
    assert s["requests"] == 80
    # At most one upstream connection per concurrent client (plus slack): reuse happens.
    assert s["handshakes"] <= 16, s


@pytest.mark.parametrize("maxv", ["1.3", "1.2"])
def test_new_upstream_connection_resumes_session(make_upstream, make_daemon, maxv):
    """After the server idle-closes the pooled connection, the next one resumes."""
    up = make_upstream(max_version=maxv, idle_close=0.5)
    d = make_daemon(up)
    assert _one(d.port, "/echo/1").status == 200
    time.sleep(1.0)
    assert wait_until(lambda: up.stats()["open"] == 0, 3)
    assert _one(d.port, "/echo/2").status == 200
    s = up.stats()
    assert s["handshakes"] == 2, s
    assert s["resumed"] >= 1, s
    assert s["versions"] == ["TLSv" + maxv] * 2


def test_upstream_closed_pooled_connection_never_loses_a_request(make_upstream, make_daemon):
    up = make_upstream(idle_close=0.5)
    d = make_daemon(up)
    sent = []
    for i in range(4):
        if i % 2:
            body = payload(1000 + i)
            r = _one(d.port, "/mirror/%d" % i, "POST", body, close=False)
            assert r.status == 200, (i, r)
            assert r.body == body
        else:
            r = _one(d.port, "/echo/%d" % i, close=False)
            assert r.status == 200, (i, r)
        sent.append(i)
        time.sleep(1.0)
    paths = [h["path"] for h in up.requests]
    # Each request reached the upstream exactly once, in order.
    assert paths == ["/echo/0", "/mirror/1", "/echo/2", "/mirror/3"]
    assert up.requests[1]["body_sha256"] == sha256(payload(1001))
    assert up.stats()["handshakes"] == 4


def test_pooled_connection_closed_after_upstream_idle_timeout(make_daemon, upstream):
    d = make_daemon(upstream, route={"upstream_idle_timeout": "1"})
    assert _one(d.port).status == 200
    assert upstream.stats()["open"] == 1
    # tlslift closes its idle pooled connection after 1 s (the server would wait 20 s).
    assert wait_until(lambda: upstream.stats()["open"] == 0, 4), upstream.stats()
    assert _one(d.port).status == 200
    assert upstream.stats()["handshakes"] == 2


def test_pool_size_limits_idle_connections(make_daemon, upstream):
    """upstream_pool_size = 1: after a burst of 4 concurrent requests, one idle connection stays."""
    d = make_daemon(upstream, route={"upstream_pool_size": "1"})
    conns = []
    for i in range(4):
        c = RawConn(d.port)
        c.send(build_request("GET", "/delay/400"))
        conns.append(c)
    for c in conns:
        assert c.read_response().status == 200
        c.close()
    # The burst needed 4 upstream connections at once; only 1 stays pooled.
    assert upstream.stats()["handshakes"] == 4, upstream.stats()
    assert wait_until(lambda: upstream.stats()["open"] <= 1, 3), upstream.stats()


def test_upstream_connection_close_not_reused(daemon, upstream):
    """An upstream response with Connection: close takes its connection out of the pool."""
    with RawConn(daemon.port) as c:
        c.send(build_request("GET", "/sizeclose/10"))
        r = c.read_response()
        assert r.status == 200 and r.body == payload(10)
        # The client connection itself may stay open: Connection: close was the upstream's hop.
        c.send(build_request("GET", "/echo/next"))
        r2 = c.read_response()
    assert r2.status == 200
    assert [h["path"] for h in upstream.heads] == ["/sizeclose/10", "/echo/next"]
    assert upstream.stats()["handshakes"] == 2
