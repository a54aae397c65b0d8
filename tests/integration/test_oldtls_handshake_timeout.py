"""A TLS client that stalls is closed within client_header_timeout (1 s here), like a plain
one: after its ClientHello (the engine answered and waits for the client's next flight), and
after a completed handshake with no request (the first request must come as fast as a
head). For the legacy engine (TLS 1.0) and the modern one (TLS 1.2)."""

import time

import pytest

from harness import RawConn, client_hello, legacy_client_context, tls_conn


@pytest.mark.parametrize("version", ["1.0", "1.2"])
def test_stall_after_clienthello(make_tls_daemon, upstream, version):
    d = make_tls_daemon(upstream, client_header_timeout="1s")
    with RawConn(d.port, timeout=10) as c:
        t0 = time.monotonic()
        c.send(client_hello(version))
        first = c.recv_some(2)
        assert first[:1] == b"\x16", first[:16]  # ServerHello...
        c.read_until_close(6)
        took = time.monotonic() - t0
    assert 0.8 <= took <= 3.5, "closed after %.2fs with client_header_timeout = 1s" % took
    d.assert_serving(upstream)


@pytest.mark.parametrize("version", ["1.0", "1.2"])
def test_no_request_after_handshake(make_tls_daemon, upstream, mkcert_pki, version):
    d = make_tls_daemon(upstream, client_header_timeout="1s")
    ctx = legacy_client_context(version, cafile=mkcert_pki.ca)
    t0 = time.monotonic()
    with tls_conn(d.port, ctx, server_hostname="api.raygun.com", timeout=10) as c:
        assert c.closed_within(6)
        took = time.monotonic() - t0
    assert 0.8 <= took <= 3.5, "closed after %.2fs with client_header_timeout = 1s" % took
    assert upstream.stats()["requests"] == 0
    d.assert_serving(upstream)
