"""Plain HTTP on a tls_cert listener: the first byte is not a TLS handshake, so the
connection is plain HTTP (curl http://), forwarded like on a plain listener; TLS 1.0 and
plain clients alternate on the same port."""

import json
import shutil
import subprocess

import pytest

from harness import SECLEVEL0, RawConn, build_request, http_get_close, payload, s_client, sha256

needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")


@needs_curl
def test_curl_plain_http(make_tls_daemon, upstream, tmp_path):
    d = make_tls_daemon(upstream)
    body = payload(10000)
    f = tmp_path / "b.bin"
    f.write_bytes(body)
    r = subprocess.run(["curl", "-sS", "--max-time", "15", "--data-binary", "@%s" % f,
                        "http://127.0.0.1:%d/echo/plain" % d.port],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout)
    assert rec["path"] == "/echo/plain" and rec["body_sha256"] == sha256(body), rec
    assert upstream.bodies == [body]
    acc = d.wait_access(1)
    assert acc[-1]["status"] == "200", acc[-1]["_line"]
    assert not d.wait_log(r"speaks TLS", timeout=0.1), d.stderr()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
def test_plain_and_tls10_alternate(make_tls_daemon, upstream, mkcert_pki):
    d = make_tls_daemon(upstream)
    for i in range(3):
        with RawConn(d.port) as c:  # keep-alive plain connection, two requests
            c.send(build_request("GET", "/echo/p%da" % i))
            assert c.read_response().status == 200
            c.send(build_request("GET", "/echo/p%db" % i))
            assert c.read_response().status == 200
        s = s_client(d.port, "-tls1", "-cipher", "DEFAULT:" + SECLEVEL0,
                     data=http_get_close("/echo/t%d" % i), servername="api.raygun.com",
                     cafile=mkcert_pki.ca)
        assert s.handshake_ok and s.response()[0] == 200, s.describe()
    assert [r["path"] for r in upstream.requests] == [
        p for i in range(3) for p in ("/echo/p%da" % i, "/echo/p%db" % i, "/echo/t%d" % i)]
