"""A valid ClientHello that arrives in pieces is still a ClientHello: sent one byte per TCP
write, or split across two TLS records (the record layer allows it), the daemon's peek waits
for the whole message, picks the engine and the route (SNI in the second half), and the
handshake and a request complete. For TLS 1.0 (legacy engine) and 1.2/1.3 (modern engine).

The client is Python's ssl over a MemoryBIO, so the test decides how the first flight goes on
the wire; the rest of the handshake is sent as is.
"""

import json
import socket
import ssl
import struct
import time

import pytest

from harness import build_request, legacy_client_context


class BioClient:
    def __init__(self, port, ctx, server_hostname, first_flight):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname=server_hostname)
        self.first_flight = first_flight
        self.sent_first = False

    def _flush(self):
        data = self.out.read()
        if not data:
            return
        if not self.sent_first:
            self.sent_first = True
            self.first_flight(self.sock, data)
        else:
            self.sock.sendall(data)

    def _recv(self, deadline):
        self.sock.settimeout(max(0.05, deadline - time.monotonic()))
        d = self.sock.recv(65536)
        if not d:
            self.inc.write_eof()
        else:
            self.inc.write(d)

    def handshake(self, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.obj.do_handshake()
                self._flush()
                return
            except ssl.SSLWantReadError:
                self._flush()
                if time.monotonic() > deadline:
                    raise TimeoutError("handshake did not finish")
                self._recv(deadline)

    def request(self, data, timeout=10):
        self.obj.write(data)
        self._flush()
        deadline = time.monotonic() + timeout
        buf = b""
        while True:
            try:
                chunk = self.obj.read(65536)
                if not chunk:
                    return buf
                buf += chunk
                head, sep, body = buf.partition(b"\r\n\r\n")
                if sep:
                    for l in head.split(b"\r\n"):
                        if l.lower().startswith(b"content-length:") and \
                                len(body) >= int(l.split(b":")[1]):
                            return buf
            except ssl.SSLWantReadError:
                self._flush()
                if time.monotonic() > deadline:
                    raise TimeoutError("no full response: %r" % buf[:200])
                self._recv(deadline)
            except ssl.SSLZeroReturnError:
                return buf

    def close(self):
        self.sock.close()


def byte_by_byte(sock, data):
    for i in range(len(data)):
        sock.sendall(data[i:i + 1])
        time.sleep(0.002)


def two_records(sock, data):
    """Split the first record's handshake payload in two records (same header)."""
    n = struct.unpack(">H", data[3:5])[0]
    payload, rest = data[5:5 + n], data[5 + n:]
    cut = len(payload) // 2
    out = b""
    for part in (payload[:cut], payload[cut:]):
        out += data[:3] + struct.pack(">H", len(part)) + part
    sock.sendall(out[:len(out) // 2])  # and cut the TCP stream mid-record too
    time.sleep(0.05)
    sock.sendall(out[len(out) // 2:] + rest)


@pytest.mark.parametrize("how", [byte_by_byte, two_records], ids=["byte-by-byte", "two-records"])
@pytest.mark.parametrize("version", ["1.0", "1.2", "1.3"])
def test_fragmented_hello(make_tls_daemon, upstream, mkcert_pki, how, version):
    d = make_tls_daemon(upstream)
    ctx = legacy_client_context(version, cafile=mkcert_pki.ca)
    c = BioClient(d.port, ctx, "api.raygun.com", how)
    try:
        c.handshake()
        assert c.obj.version() == {"1.0": "TLSv1", "1.2": "TLSv1.2", "1.3": "TLSv1.3"}[version]
        resp = c.request(build_request("GET", "/echo/frag", [("Host", "api.raygun.com")]))
    finally:
        c.close()
    assert resp.startswith(b"HTTP/1.1 200"), resp[:200]
    assert json.loads(resp.partition(b"\r\n\r\n")[2])["path"] == "/echo/frag"
    assert [r["path"] for r in upstream.requests] == ["/echo/frag"]
