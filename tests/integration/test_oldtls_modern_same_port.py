"""TLS 1.2 and 1.3 clients on the same port as the TLS 1.0 ones (the listener has
tls_min_version = 1.0): `openssl s_client -tls1_2` / `-tls1_3` and Python's default client
context, verifying the mkcert CA and the name; they are served by the modern engine (the
version they asked for, AEAD suites) and reach the upstream. A TLS 1.0 client on the same
daemon right after still works: the engines do not disturb each other."""

import json
import shutil
import ssl

import pytest

from harness import SECLEVEL0, build_request, http_get_close, s_client, tls_conn

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


@needs_openssl
@pytest.mark.parametrize("flag,protocol", [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")],
                         ids=["tls1.2", "tls1.3"])
def test_openssl_modern(make_tls_daemon, upstream, mkcert_pki, flag, protocol):
    d = make_tls_daemon(upstream)
    path = "/echo/%s" % protocol
    s = s_client(d.port, flag, data=http_get_close(path), servername="api.raygun.com",
                 cafile=mkcert_pki.ca)
    assert s.handshake_ok and s.protocol == protocol and s.verify == 0, s.describe()
    # Modern clients get AEAD suites, never the CBC ones kept for legacy clients.
    assert "GCM" in s.cipher or "CHACHA20" in s.cipher, s.describe()
    status, _, body = s.response()
    assert status == 200, s.describe()
    assert json.loads(body)["path"] == path
    assert [r["path"] for r in upstream.requests] == [path]
    assert d.wait_log(r"client \S+ speaks TLS %s" % protocol[4:].replace(".", r"\.")), d.stderr()
    # A legacy client on the same port right after.
    s = s_client(d.port, "-tls1", "-cipher", "DEFAULT:" + SECLEVEL0,
                 data=http_get_close("/echo/legacy"), servername="api.raygun.com",
                 cafile=mkcert_pki.ca)
    assert s.handshake_ok and s.protocol == "TLSv1" and s.response()[0] == 200, s.describe()


def test_python_default_context(make_tls_daemon, upstream, mkcert_pki):
    d = make_tls_daemon(upstream)
    ctx = ssl.create_default_context(cafile=str(mkcert_pki.ca))
    with tls_conn(d.port, ctx, server_hostname="api.raygun.com") as c:
        assert c.sock.version() == "TLSv1.3", c.sock.version()
        for i in range(3):  # keep-alive over the modern engine
            c.send(build_request("GET", "/echo/py%d" % i, [("Host", "api.raygun.com")]))
            r = c.read_response()
            assert r.status == 200 and json.loads(r.body)["path"] == "/echo/py%d" % i, r
    assert len(upstream.requests) == 3


def test_python_tls12_context(make_tls_daemon, upstream, mkcert_pki):
    d = make_tls_daemon(upstream)
    ctx = ssl.create_default_context(cafile=str(mkcert_pki.ca))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with tls_conn(d.port, ctx, server_hostname="api.raygun.com") as c:
        assert c.sock.version() == "TLSv1.2"
        c.send(build_request("GET", "/size/70000", [("Host", "api.raygun.com")]))
        r = c.read_response()
        assert r.status == 200 and len(r.body) == 70000, r
