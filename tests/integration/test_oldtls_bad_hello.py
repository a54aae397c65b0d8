"""Broken ClientHellos on a TLS listener (tls_min_version = 1.0): cut short, oversized, or
garbage after a TLS record header each end in a fatal alert or a close (never a hang, never
a crash), and the daemon goes on serving plain HTTP, TLS 1.0 and TLS 1.3 clients afterwards.

- cut short, then the client closes: nothing to answer; the daemon must not mind.
- cut short, then the client waits: the daemon closes once client_header_timeout (1 s here)
  has passed, not before, not much later.
- a record header claiming 20000 bytes (over the 2^14 + 2048 a record may carry), a handshake
  message longer than the ClientHello limit, garbage after a valid record header, an SSLv2
  ClientHello: alert or close at once, without waiting for a timeout.
- garbage after a complete ClientHello (the engine has taken over): alert or close.
- a few hundred mutated ClientHellos, each on its own connection: the daemon survives.
"""

import random
import struct
import time

import pytest

from harness import RawConn, build_request, client_hello, legacy_client_context, tls_conn

ALERT = 21


@pytest.fixture
def d(make_tls_daemon, upstream):
    return make_tls_daemon(upstream, client_header_timeout="1s")


def _assert_serving(d, upstream, mkcert_pki):
    assert d.alive(), d.stderr()
    d.assert_serving(upstream)
    for version in ("1.0", "1.3"):
        ctx = legacy_client_context(version, cafile=mkcert_pki.ca)
        with tls_conn(d.port, ctx, server_hostname="api.raygun.com") as c:
            c.send(build_request("GET", "/echo/after-%s" % version, [("Host", "api.raygun.com")]))
            r = c.read_response()
            assert r.status == 200, r


def _alert_or_close(c, within):
    """Read until the daemon closes (bounded); the bytes must be nothing or TLS alert
    records. Returns (bytes, seconds taken)."""
    t0 = time.monotonic()
    data = c.read_until_close(within)
    took = time.monotonic() - t0
    rest = data
    while rest:
        assert rest[0] == ALERT and len(rest) >= 7, "not an alert: %r" % data[:64]
        n = struct.unpack(">H", rest[3:5])[0]
        assert n == 2 and rest[5] == 2, "not a fatal alert: %r" % data[:64]
        rest = rest[5 + n:]
    return data, took


def test_cut_short_then_client_closes(d, upstream, mkcert_pki):
    hello = client_hello("1.0")
    for _ in range(20):
        with RawConn(d.port) as c:
            c.send(hello[:20])
    with RawConn(d.port) as c:  # one byte of a record header
        c.send(hello[:1])
    _assert_serving(d, upstream, mkcert_pki)


@pytest.mark.parametrize("cut", [1, 5, 20, -1], ids=["1-byte", "record-header", "20-bytes",
                                                       "all-but-last-byte"])
def test_cut_short_then_wait_closed_by_header_timeout(d, upstream, mkcert_pki, cut):
    hello = client_hello("1.0")
    with RawConn(d.port, timeout=10) as c:
        t0 = time.monotonic()
        c.send(hello[:cut])
        data, _ = _alert_or_close(c, 6)
        took = time.monotonic() - t0
    assert 0.8 <= took <= 3.5, "closed after %.2fs with client_header_timeout = 1s" % took
    assert upstream.stats()["requests"] == 0
    _assert_serving(d, upstream, mkcert_pki)


def _handshake(body, msg_type=1):
    return bytes([msg_type]) + len(body).to_bytes(3, "big") + body


def _record(payload, content_type=0x16):
    return bytes([content_type, 3, 1]) + struct.pack(">H", len(payload)) + payload


def _prompt_cases():
    hello = client_hello("1.0")
    body = hello[5:]
    big_msg = bytes([1]) + (70000).to_bytes(3, "big") + b"\x03\x01" + bytes(16378)
    recs = b"".join(b"\x16\x03\x01" + struct.pack(">H", len(big_msg[i:i + 16384]))
                    + big_msg[i:i + 16384] for i in range(0, len(big_msg), 16384))
    rnd = random.Random(3)
    return {
        "record-claims-20000": b"\x16\x03\x01" + struct.pack(">H", 20000) + body,
        "record-claims-20000-and-sends-it": b"\x16\x03\x01" + struct.pack(">H", 20000)
        + body + bytes(20000 - len(body)),
        "handshake-message-over-limit": recs,
        "garbage-after-record-header": b"\x16\x03\x01\x00\x40" + rnd.randbytes(64),
        "zero-length-record": b"\x16\x03\x01\x00\x00" + b"\x16\x03\x01\x00\x00",
        "not-a-clienthello": b"\x16\x03\x01\x00\x08" + b"\x02\x00\x00\x04\x03\x01\x00\x00",
        "session-id-overruns-clienthello": _record(_handshake(b"\x03\x01" + bytes(32) + b"\xff"
                                                              + bytes(10))),
        "extensions-overrun-clienthello": _record(_handshake(
            b"\x03\x01" + bytes(32) + b"\x00" + b"\x00\x02\x00\x2f" + b"\x01\x00"
            + b"\x01\x00" + b"\x00\x00\x00\x10")),
        "sslv2-clienthello": bytes.fromhex("802e0103010015000000100700c0030080010080060040"
                                           "040080020080") + rnd.randbytes(16),
    }


PROMPT = _prompt_cases()


@pytest.mark.parametrize("name", sorted(PROMPT))
def test_bad_hello_alert_or_close_at_once(make_tls_daemon, upstream, mkcert_pki, name):
    # client_header_timeout stays at 10 s: an answer within 3 s is not the timeout.
    d = make_tls_daemon(upstream)
    with RawConn(d.port, timeout=10) as c:
        t0 = time.monotonic()
        try:
            c.send(PROMPT[name])
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed on us while we were still sending: a close
        data, _ = _alert_or_close(c, 8)
        took = time.monotonic() - t0
    assert took < 3, "took %.2fs to refuse (%r)" % (took, data)
    assert upstream.stats()["requests"] == 0
    _assert_serving(d, upstream, mkcert_pki)


@pytest.mark.parametrize("version", ["1.0", "1.2"])
def test_garbage_after_complete_hello(d, upstream, mkcert_pki, version):
    """The ClientHello is fine and an engine answered it; then a garbage record instead of
    the client's next flight."""
    with RawConn(d.port, timeout=10) as c:
        c.send(client_hello(version))
        got = c.recv_some(3)
        assert got[:1] == b"\x16", "no ServerHello: %r" % got[:32]
        t0 = time.monotonic()
        try:
            c.send(b"\x16\x03\x01\x00\x30" + random.Random(5).randbytes(48))
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = c.read_until_close(5)
        took = time.monotonic() - t0
    assert took < 3, "took %.2fs" % took
    assert data == b"" or data[0] in (ALERT, 0x16), data[:32]
    _assert_serving(d, upstream, mkcert_pki)


def test_mutated_hellos_do_not_hurt(d, upstream, mkcert_pki):
    rnd = random.Random(1234)
    seeds = [client_hello("1.0"), client_hello("1.1"), client_hello("1.2"), client_hello("1.3"),
             client_hello("1.0", sni="a-much-longer-host-name." * 8 + "example")]
    for i in range(300):
        m = bytearray(rnd.choice(seeds))
        for _ in range(rnd.randint(1, 6)):
            op = rnd.randrange(4)
            if len(m) < 2:
                break
            pos = rnd.randrange(len(m))
            if op == 0:
                m[pos] = rnd.randrange(256)
            elif op == 1:
                del m[pos:pos + rnd.randint(1, 40)]
            elif op == 2:
                m[pos:pos] = rnd.randbytes(rnd.randint(1, 40))
            else:
                m = m[:pos] or m
        with RawConn(d.port, timeout=2) as c:
            try:
                c.send(bytes(m))
                if i % 25 == 0:
                    c.recv_some(0.2)
            except OSError:
                pass
        if i % 100 == 99:
            assert d.alive(), d.stderr()
    _assert_serving(d, upstream, mkcert_pki)
