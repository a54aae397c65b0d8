"""Python's ssl module capped at TLS 1.0 (minimum = maximum = TLSv1, ciphers
DEFAULT:@SECLEVEL=0), verifying the mkcert CA and the name api.raygun.com: two keep-alive
requests on one TLS 1.0 connection, one with a body larger than a TLS record, and a response
larger than a record, all intact."""

import json
import ssl

import pytest

from harness import build_request, legacy_client_context, payload, sha256, tls_conn


@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_python_ssl_capped(make_tls_daemon, upstream, mkcert_pki, version):
    if version == "1.0" and not ssl.HAS_TLSv1:
        pytest.fail("this Python's OpenSSL has no TLS 1.0")
    d = make_tls_daemon(upstream)
    ctx = legacy_client_context(version, cafile=mkcert_pki.ca)
    assert ctx.maximum_version <= ssl.TLSVersion.TLSv1_1
    body = payload(40000)  # more than two 16 KiB records
    with tls_conn(d.port, ctx, server_hostname="api.raygun.com") as c:
        assert c.sock.version() == {"1.0": "TLSv1", "1.1": "TLSv1.1"}[version]
        cipher = c.sock.cipher()[0]
        assert cipher.endswith("-SHA") and "AES" in cipher, cipher
        c.send(build_request("POST", "/echo/py", [("Host", "api.raygun.com")], body))
        r = c.read_response()
        assert r.status == 200, r
        rec = json.loads(r.body)
        assert rec["body_len"] == len(body) and rec["body_sha256"] == sha256(body), rec
        # Same connection, a response bigger than one record.
        c.send(build_request("GET", "/size/100000", [("Host", "api.raygun.com")]))
        r = c.read_response()
        assert r.status == 200 and r.body == payload(100000), r
    assert upstream.bodies[0] == body
    assert [x["path"] for x in upstream.requests] == ["/echo/py", "/size/100000"]
    assert d.wait_log(r"client \S+ speaks TLS %s" % version.replace(".", r"\.")), d.stderr()
