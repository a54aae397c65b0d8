"""Over a TLS 1.0 client connection (the legacy engine) the HTTP relay behaves as over plain
HTTP: pipelined requests answered in order while large responses stream (the engine must be
full-duplex), a multi-megabyte upload and download with back-pressure, a chunked request
body, `Expect: 100-continue` answered at once (Raygun4Net on .NET sends it), and many
requests on one keep-alive connection."""

import json
import time

import pytest

from harness import build_request, chunk_encode, legacy_client_context, payload, sha256, tls_conn

H = [("Host", "api.raygun.com")]


@pytest.fixture
def conn(make_tls_daemon, upstream, mkcert_pki):
    d = make_tls_daemon(upstream)

    def make(version="1.0"):
        return tls_conn(d.port, legacy_client_context(version, cafile=mkcert_pki.ca),
                        server_hostname="api.raygun.com", timeout=20)

    make.daemon = d
    return make


@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_pipelined_large_responses(conn, upstream, version):
    sizes = [300000, 17, 200000, 0, 65536]
    with conn(version) as c:
        c.send(b"".join(build_request("GET", "/size/%d" % n, H) for n in sizes))
        for n in sizes:
            r = c.read_response(timeout=20)
            assert r.status == 200 and r.body == payload(n), (n, r)
    assert [x["path"] for x in upstream.requests] == ["/size/%d" % n for n in sizes]


def test_large_upload_and_download(conn, upstream):
    body = payload(3 * 1024 * 1024)
    with conn() as c:
        c.send(build_request("POST", "/echo/up", H, body))
        r = c.read_response(timeout=30)
        assert r.status == 200
        rec = json.loads(r.body)
        assert rec["body_len"] == len(body) and rec["body_sha256"] == sha256(body), rec
        c.send(build_request("GET", "/size/%d" % (4 * 1024 * 1024), H))
        r = c.read_response(timeout=30)
        assert r.status == 200 and r.body == payload(4 * 1024 * 1024)
    assert upstream.bodies[0] == body


def test_chunked_request_body(conn, upstream):
    body = payload(100000)
    with conn() as c:
        c.send(build_request("POST", "/echo/chunked", H + [("Transfer-Encoding", "chunked")],
                             chunk_encode(body)))
        r = c.read_response()
        assert r.status == 200
        assert json.loads(r.body)["body_sha256"] == sha256(body)
    assert upstream.bodies == [body]


def test_expect_100_continue(conn, upstream):
    body = b'{"details":{"error":{"message":"boom"}}}'
    with conn() as c:
        head = build_request("POST", "/echo/entries", H + [
            ("X-ApiKey", "k"), ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))), ("Expect", "100-continue")])
        c.send(head)
        t0 = time.monotonic()
        interim = b""
        while b"\r\n\r\n" not in interim and time.monotonic() - t0 < 3:
            interim += c.recv_some(0.5)  # TLS 1.0 CBC: 1/n-1 split records, read on
        assert interim.startswith(b"HTTP/1.1 100") and interim.endswith(b"\r\n\r\n"), interim
        assert time.monotonic() - t0 < 0.3
        c.send(body)
        r = c.read_response()
        assert r.status == 200
        rec = json.loads(r.body)
        assert rec["body"] == body.decode()
        assert "expect" not in {k.lower() for k, _ in rec["headers"]}


def test_many_keepalive_requests(conn, upstream):
    with conn() as c:
        for i in range(200):
            c.send(build_request("GET", "/echo/%d" % i, H))
            r = c.read_response()
            assert r.status == 200 and json.loads(r.body)["path"] == "/echo/%d" % i
    assert len(upstream.requests) == 200
    assert len([l for l in conn.daemon.stderr().splitlines() if " speaks TLS 1.0" in l]) == 1
