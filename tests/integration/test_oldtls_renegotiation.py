"""Client-initiated renegotiation is refused (BearSSL with BR_OPT_NO_RENEGOTIATION for TLS
1.0/1.1; mbedTLS for 1.2): `openssl s_client` sends a request, then asks to renegotiate
("R" on its stdin); the daemon answers with a no_renegotiation alert (or closes), never a
second handshake, and goes on serving new connections."""

import os
import select
import shutil
import subprocess
import time

import pytest

from harness import SECLEVEL0, http_get_close, s_client

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def _read_until(proc, pred, timeout):
    """Read proc.stdout until pred(all bytes so far) or EOF or timeout; return the bytes."""
    out = b""
    deadline = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    while not pred(out):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        out += chunk
    return out


@pytest.mark.parametrize("flag", ["-tls1", "-tls1_1", "-tls1_2"])
def test_renegotiation_refused(make_tls_daemon, upstream, mkcert_pki, flag):
    d = make_tls_daemon(upstream)
    cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % d.port, flag,
           "-cipher", "DEFAULT:" + SECLEVEL0, "-servername", "api.raygun.com",
           "-CAfile", str(mkcert_pki.ca), "-verify_return_error"]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        proc.stdin.write(b"GET /echo/r1 HTTP/1.1\r\nHost: api.raygun.com\r\n\r\n")
        proc.stdin.flush()
        out = _read_until(proc, lambda b: b"/echo/r1" in b and b.rstrip().endswith(b"}"), 10)
        assert b"HTTP/1.1 200" in out, out.decode("latin-1")[-2000:]
        proc.stdin.write(b"R\n")
        proc.stdin.flush()
        out += _read_until(proc, lambda b: b"no renegotiation" in b or b"alert" in b, 10)
        text = out.decode("latin-1")
        assert "RENEGOTIATING" in text, text[-2000:]
        # Give a (wrong) second handshake the time it would need, then look at the log.
        time.sleep(0.3)
        assert "no renegotiation" in text or proc.poll() is not None, text[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)
        for f in (proc.stdin, proc.stdout):
            try:
                f.close()
            except OSError:
                pass
    # One handshake on that connection: the log names its TLS version once.
    assert len([l for l in d.stderr().splitlines() if " speaks TLS " in l]) == 1, d.stderr()
    assert d.alive()
    s = s_client(d.port, flag, "-cipher", "DEFAULT:" + SECLEVEL0,
                 data=http_get_close("/echo/after"), servername="api.raygun.com",
                 cafile=mkcert_pki.ca)
    assert s.handshake_ok and s.response()[0] == 200, s.describe()
