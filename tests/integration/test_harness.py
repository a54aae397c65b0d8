"""Self-test of the harness (PKI and upstream servers), with curl and openssl.

No tlslift here: if these fail, the other tests' results mean nothing.
"""

import json
import socket
import ssl
import subprocess
import time

import pytest

from harness import payload, run, sha256


def curl(*args, timeout=20):
    return subprocess.run(["curl", "-sS", "--max-time", "10", *args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout)


def test_pki_chain(pki):
    r = run(["openssl", "verify", "-CAfile", str(pki.ca), str(pki.cert("localhost")[0])])
    assert r.returncode == 0, r.stdout + r.stderr
    r = run(["openssl", "verify", "-CAfile", str(pki.ca), str(pki.cert("expired")[0])])
    assert r.returncode != 0 and "expired" in (r.stdout + r.stderr)
    r = run(["openssl", "verify", "-CAfile", str(pki.ca), str(pki.cert("selfsigned")[0])])
    assert r.returncode != 0
    r = run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", str(pki.cert("wronghost")[0])])
    assert "other.example" in r.stdout and "localhost" not in r.stdout


def test_upstream_echo_and_modes(pki, upstream):
    base = ["--cacert", str(pki.ca)]
    r = curl(*base, upstream.url + "/echo/x?q=1", "-H", "X-Test: 1")
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout)
    assert rec["path"] == "/echo/x?q=1" and ["X-Test", "1"] in rec["headers"]
    for mode in ("size", "chunked", "close", "close10"):
        r = curl(*base, "%s/%s/70000" % (upstream.url, mode))
        assert r.returncode == 0, (mode, r.stderr)
        assert r.stdout == payload(70000), mode
    r = curl(*base, "-o", "/dev/null", "-w", "%{http_code}", upstream.url + "/status/204")
    assert r.stdout == b"204"
    r = curl(*base, "-I", upstream.url + "/size/10")
    assert b"Content-Length: 10" in r.stdout
    body = payload(100000)
    r = subprocess.run(["curl", "-sS", "--max-time", "10", *base, "-H", "Transfer-Encoding: chunked",
                        "--data-binary", "@-", upstream.url + "/mirror"], input=body,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    assert r.stdout == body
    assert upstream.requests[-1]["framing"] == "chunked"
    assert upstream.requests[-1]["body_sha256"] == sha256(body)


def test_upstream_keepalive_and_counts(pki, upstream):
    r = curl("--cacert", str(pki.ca), upstream.url + "/echo/1", upstream.url + "/echo/2")
    assert r.returncode == 0
    s = upstream.stats()
    assert s["connections"] == 1 and s["handshakes"] == 1 and s["requests"] == 2
    assert s["sni"] == ["localhost"]


@pytest.mark.parametrize("maxv", ["1.2", "1.3"])
def test_upstream_counts_resumption(pki, make_upstream, maxv):
    up = make_upstream(max_version=maxv)
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    sess = None
    for _ in range(2):
        with socket.create_connection(("127.0.0.1", up.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost", session=sess) as s:
                s.sendall(b"GET /echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                data = b""
                while True:
                    d = s.recv(65536)
                    if not d:
                        break
                    data += d
                assert data.startswith(b"HTTP/1.1 200")
                sess = s.session
    assert up.stats()["handshakes"] == 2
    assert up.stats()["resumed"] == 1
    assert up.stats()["versions"] == ["TLSv" + maxv] * 2


def test_upstream_idle_close(pki, make_upstream):
    up = make_upstream(idle_close=0.5)
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    with socket.create_connection(("127.0.0.1", up.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"GET /size/3 HTTP/1.1\r\nHost: localhost\r\n\r\n")
            time.sleep(1.0)
            data = b""
            t0 = time.monotonic()
            while time.monotonic() - t0 < 3:
                try:
                    d = s.recv(65536)
                except ssl.SSLError:
                    break
                if not d:
                    break
                data += d
            assert data.startswith(b"HTTP/1.1 200") and data.endswith(payload(3))
    assert up.stats()["open"] == 0


def test_upstream_bad_certs_rejected_by_curl(pki, make_upstream):
    for cert in ("expired", "wronghost", "selfsigned"):
        up = make_upstream(cert=cert)
        r = curl("--cacert", str(pki.ca), up.url + "/echo")
        assert r.returncode == 60, (cert, r.stderr)
        assert up.stats()["heads"] == 0


def test_upstream_tls11_only(pki, make_upstream):
    up = make_upstream(tls11_only=True)
    # A TLS 1.2+ client fails ...
    r = curl("--cacert", str(pki.ca), up.url + "/echo")
    assert r.returncode == 35, r.stderr
    # ... a TLS 1.1 client gets through (so the server really speaks 1.1).
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % up.port, "-tls1_1",
                        "-cipher", "DEFAULT:@SECLEVEL=0", "-servername", "localhost"],
                       input=b"GET /echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    assert b"Protocol  : TLSv1.1" in r.stdout or b"TLSv1.1" in r.stdout, r.stdout[-2000:]
    assert up.stats()["versions"] == ["TLSv1.1"]


def test_upstream_max_12(pki, make_upstream):
    up = make_upstream(max_version="1.2")
    r = curl("--cacert", str(pki.ca), up.url + "/echo")
    assert r.returncode == 0
    assert up.stats()["versions"] == ["TLSv1.2"]


def test_upstream_stall(pki, make_upstream):
    up = make_upstream(stall=True)
    t0 = time.monotonic()
    r = curl("--cacert", str(pki.ca), "--max-time", "1", up.url + "/echo")
    assert r.returncode == 28
    assert time.monotonic() - t0 < 5
    assert up.stats()["heads"] == 1 and up.stats()["requests"] == 0
