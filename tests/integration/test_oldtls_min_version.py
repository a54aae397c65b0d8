"""A client whose best version is below the route's tls_min_version gets a fatal
protocol_version alert (70) and a close, nothing reaches the upstream, the refusal is logged,
and the daemon goes on serving TLS and plain clients on that port."""

import shutil
import ssl

import pytest

from harness import (SECLEVEL0, RawConn, build_request, client_hello, free_port, http_get_close,
                     legacy_client_context, s_client, tls_conn)

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")

PROTOCOL_VERSION_ALERT = bytes([21, 3, 1, 0, 2, 2, 70])


def _assert_still_serving(d, upstream, mkcert_pki, modern_flag):
    before = upstream.stats()["requests"]
    s = s_client(d.port, modern_flag, data=http_get_close("/echo/ok"),
                 servername="api.raygun.com", cafile=mkcert_pki.ca)
    assert s.handshake_ok and s.response()[0] == 200, s.describe()
    d.assert_serving()
    assert upstream.stats()["requests"] == before + 2


@pytest.mark.parametrize("min_version,flag,modern", [
    ("1.2", "-tls1", "-tls1_2"),
    ("1.2", "-tls1_1", "-tls1_3"),
    ("1.1", "-tls1", "-tls1_1"),
    ("1.3", "-tls1_2", "-tls1_3"),
], ids=["1.2-vs-tls1.0", "1.2-vs-tls1.1", "1.1-vs-tls1.0", "1.3-vs-tls1.2"])
def test_below_min_version_refused(make_tls_daemon, upstream, mkcert_pki, min_version, flag,
                                   modern):
    d = make_tls_daemon(upstream, tls_min_version=min_version)
    s = s_client(d.port, flag, "-cipher", "DEFAULT:" + SECLEVEL0, data=http_get_close("/echo/x"),
                 servername="api.raygun.com", cafile=mkcert_pki.ca)
    assert not s.handshake_ok and not s.http, s.describe()
    assert "alert protocol version" in s.err or "alert number 70" in s.err, s.describe()
    assert upstream.stats()["requests"] == 0
    assert d.wait_log(r"route test: client \S+ offers TLS \S+ at most, below tls_min_version "
                      + min_version.replace(".", r"\.")), d.stderr()
    if min_version == "1.1":
        extra = ("-cipher", "DEFAULT:" + SECLEVEL0)
        s = s_client(d.port, modern, *extra, data=http_get_close("/echo/ok11"),
                     servername="api.raygun.com", cafile=mkcert_pki.ca)
        assert s.handshake_ok and s.protocol == "TLSv1.1", s.describe()
        d.assert_serving()
    else:
        _assert_still_serving(d, upstream, mkcert_pki, modern)


def test_alert_bytes_and_close(make_tls_daemon, upstream):
    """On the wire: a TLS 1.0 ClientHello to a 1.2 route gets exactly a fatal
    protocol_version alert record, then the connection closes."""
    d = make_tls_daemon(upstream, tls_min_version="1.2")
    with RawConn(d.port, timeout=5) as c:
        c.send(client_hello("1.0"))
        data = c.read_until_close(5)
    assert data == PROTOCOL_VERSION_ALERT, data.hex()
    d.assert_serving(upstream)


def test_python_tls10_client_refused(make_tls_daemon, upstream, mkcert_pki):
    d = make_tls_daemon(upstream)  # tls_min_version = 1.0 works ...
    with tls_conn(d.port, legacy_client_context("1.0", cafile=mkcert_pki.ca),
                  server_hostname="api.raygun.com") as c:
        assert c.sock.version() == "TLSv1"
    d2 = make_tls_daemon(upstream, tls_min_version="1.2")  # ... 1.2 refuses the same client
    with pytest.raises(ssl.SSLError) as e:
        tls_conn(d2.port, legacy_client_context("1.0", cafile=mkcert_pki.ca),
                 server_hostname="api.raygun.com").close()
    assert "PROTOCOL_VERSION" in str(e.value).upper() or "protocol version" in str(e.value), e
    ctx = ssl.create_default_context(cafile=str(mkcert_pki.ca))
    with tls_conn(d2.port, ctx, server_hostname="api.raygun.com") as c:
        c.send(build_request("GET", "/echo/modern", [("Host", "api.raygun.com")]))
        assert c.read_response().status == 200


def test_sslv3_client_refused(make_tls_daemon, upstream):
    """A ClientHello offering SSL 3.0 at most gets protocol_version too."""
    hello = bytearray(client_hello("1.0"))
    assert hello[9:11] == b"\x03\x01"
    hello[1:3] = b"\x03\x00"   # record version
    hello[9:11] = b"\x03\x00"  # client_version
    d = make_tls_daemon(upstream)
    with RawConn(d.port, timeout=5) as c:
        c.send(bytes(hello))
        assert c.read_until_close(5) == PROTOCOL_VERSION_ALERT
    assert d.wait_log(r"offers TLS SSL 3\.0 or older at most|SSL 3\.0"), d.stderr()
    d.assert_serving(upstream)


def test_min_version_per_route_on_shared_listen(make_daemon, make_upstream, mkcert_pki, pki):
    """Route a (a.test) takes TLS 1.0, route b (b.test) on the same port wants 1.2: the
    route the SNI picks decides."""
    ua, ub = make_upstream(), make_upstream()
    port = free_port()
    routes = []
    for name, up, minv in (("a", ua, "1.0"), ("b", ub, "1.2")):
        crt, key = mkcert_pki.leaf("%s.test" % name)
        routes.append((name, {"listen": "127.0.0.1:%d" % port, "server_name": "%s.test" % name,
                              "upstream": up.url, "upstream_ca_file": str(pki.ca),
                              "tls_cert": str(crt), "tls_key": str(key),
                              "tls_min_version": minv}))
    d = make_daemon(routes=routes)
    legacy = ("-tls1", "-cipher", "DEFAULT:" + SECLEVEL0)
    s = s_client(d.port, *legacy, data=http_get_close("/echo/b", host="b.test"),
                 servername="b.test", cafile=mkcert_pki.ca)
    assert not s.handshake_ok and "alert protocol version" in s.err, s.describe()
    s = s_client(d.port, *legacy, data=http_get_close("/echo/a", host="a.test"),
                 servername="a.test", cafile=mkcert_pki.ca)
    assert s.handshake_ok and s.response()[0] == 200, s.describe()
    s = s_client(d.port, "-tls1_2", data=http_get_close("/echo/b12", host="b.test"),
                 servername="b.test", cafile=mkcert_pki.ca)
    assert s.handshake_ok and s.response()[0] == 200, s.describe()
    assert [r["path"] for r in ua.requests] == ["/echo/a"]
    assert [r["path"] for r in ub.requests] == ["/echo/b12"]
