"""When tlslift closes a TLS client connection after a response it sends close_notify first
(RFC 5246 7.2.1, RFC 8446 6.1), for both engines. It matters most for a close-delimited
response (what an HTTP/1.0 client gets for a chunked or close-delimited upstream body): there
close_notify is the only thing that tells the end of the body from a cut connection.

The client is Python's ssl with suppress_ragged_eofs=False and without
OP_IGNORE_UNEXPECTED_EOF (which Python 3.10/3.11 set by default on OpenSSL 3): a close
without close_notify is then an SSL error ("unexpected eof while reading") instead of a
clean end.
"""

import socket
import ssl

import pytest

from harness import build_request, legacy_client_context, payload


def _conn(d, version, mkcert_pki):
    ctx = legacy_client_context(version, cafile=mkcert_pki.ca)
    ctx.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    raw = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname="api.raygun.com", suppress_ragged_eofs=False)


def _read_to_clean_end(s, limit=10 ** 7):
    """Everything until the peer's close_notify; SSLEOFError if it just closed."""
    out = b""
    while len(out) < limit:
        d = s.recv(65536)
        if not d:
            return out
        out += d
    raise AssertionError("no end after %d bytes" % limit)


VERSIONS = ["1.0", "1.1", "1.2", "1.3"]


@pytest.mark.parametrize("version", VERSIONS)
def test_close_notify_after_connection_close(make_tls_daemon, upstream, mkcert_pki, version):
    d = make_tls_daemon(upstream)
    with _conn(d, version, mkcert_pki) as s:
        s.sendall(build_request("GET", "/echo/cn", [("Host", "api.raygun.com"),
                                                    ("Connection", "close")]))
        try:
            data = _read_to_clean_end(s)
        except ssl.SSLError as e:  # SSLEOFError, or "UNEXPECTED_EOF_WHILE_READING"
            pytest.fail("TLS %s: tlslift closed without close_notify (%s)" % (version, e))
    assert data.startswith(b"HTTP/1.1 200"), data[:100]


@pytest.mark.parametrize("version", VERSIONS)
def test_close_delimited_body_ends_with_close_notify(make_tls_daemon, upstream, mkcert_pki,
                                                    version):
    d = make_tls_daemon(upstream)
    n = 50000
    with _conn(d, version, mkcert_pki) as s:
        s.sendall(build_request("GET", "/chunked/%d" % n, [("Host", "api.raygun.com")],
                                version="HTTP/1.0"))
        try:
            data = _read_to_clean_end(s)
        except ssl.SSLError as e:  # SSLEOFError, or "UNEXPECTED_EOF_WHILE_READING"
            pytest.fail("TLS %s: close-delimited body ended without close_notify (%s)"
                        % (version, e))
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.") and b" 200 " in head.split(b"\r\n")[0], head
    assert body == payload(n)


@pytest.mark.parametrize("version", ["1.0", "1.3"])
def test_close_notify_after_own_error(make_tls_daemon, upstream, mkcert_pki, version):
    d = make_tls_daemon(upstream)
    with _conn(d, version, mkcert_pki) as s:
        s.sendall(b"GET /echo/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")  # duplicate Host: 400
        try:
            data = _read_to_clean_end(s)
        except ssl.SSLError as e:  # SSLEOFError, or "UNEXPECTED_EOF_WHILE_READING"
            pytest.fail("TLS %s: 400 answer ended without close_notify (%s)" % (version, e))
    assert data.startswith(b"HTTP/1.1 400"), data[:100]
    assert upstream.stats()["requests"] == 0
