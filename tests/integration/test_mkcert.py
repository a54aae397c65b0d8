"""`tlslift mkcert`: a local CA and a leaf that the openssl CLI accepts, down to a TLS 1.0
RSA client (what .NET 3.5 on Windows SChannel speaks) verifying the leaf by name and by IP.

Runs `tlslift mkcert --ca DIR api.raygun.com 127.0.0.1` once per module in its own temp dir,
then checks the files with `openssl verify` / `openssl x509 -text`, and serves the leaf with
`openssl s_server -tls1` to `openssl s_client -tls1 -verify_return_error`. s_server processes
are killed by PID; a failing test shows what they printed.
"""

import os
import select
import shutil
import stat
import subprocess
import time
from datetime import datetime, timezone

import pytest

from harness import free_port, tlslift_bin

NAME = "api.raygun.com"
IP = "127.0.0.1"
LEAF_DAYS = 825
# TLS 1.0 needs SHA-1/MD5 handshake signatures, which OpenSSL 3 allows only at level 0.
SECLEVEL0 = "@SECLEVEL=0"

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


def _mkcert(*args, timeout=60):
    return subprocess.run([str(tlslift_bin()), "mkcert", *map(str, args)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout, text=True)


def _openssl(*args, check=True, timeout=30):
    r = subprocess.run(["openssl", *map(str, args)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=timeout,
                       text=True)
    if check:
        assert r.returncode == 0, "openssl %s: rc %d\n%s%s" % (" ".join(map(str, args)),
                                                              r.returncode, r.stdout, r.stderr)
    return r


@pytest.fixture(scope="module")
def mkcert_wired():
    """Skip while main does not dispatch `mkcert` yet; fail if it does and -h is broken."""
    b = tlslift_bin()
    if not b.exists():
        pytest.fail("tlslift binary not found at %s: build it (ninja -C build) or set TLSLIFT_BIN"
                    % b)
    r = _mkcert("-h")
    out = r.stdout + r.stderr
    if "mkcert" not in out:
        pytest.skip("`tlslift mkcert` is not wired into main yet: `tlslift mkcert -h` exited %d "
                    "with the daemon's own usage" % r.returncode)
    assert r.returncode == 0 and "mkcert --ca DIR" in r.stdout, out


@pytest.fixture(scope="module")
def pki(mkcert_wired, tmp_path_factory):
    d = tmp_path_factory.mktemp("mkcert") / "pki"
    r = _mkcert("--ca", d, NAME, IP)
    assert r.returncode == 0, r.stderr
    return d, r


def _pem_certs(path):
    text = path.read_text()
    end = "-----END CERTIFICATE-----\n"
    return [c + end for c in text.split(end) if c.strip()]


def _when(text, field):
    line = next(l for l in text.splitlines() if l.startswith(field + "="))
    return datetime.strptime(line.split("=", 1)[1], "%b %d %H:%M:%S %Y GMT")


def test_files_and_modes(pki):
    d, r = pki
    want = ["ca.key", "ca.crt", NAME + ".key", NAME + ".crt"]
    assert r.stdout.splitlines() == [str(d / f) for f in want]
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    for f in want:
        mode = stat.S_IMODE(os.stat(d / f).st_mode)
        assert mode == (0o600 if f.endswith(".key") else 0o644), (f, oct(mode))
    # Key material never reaches the terminal.
    assert "PRIVATE KEY" not in r.stdout + r.stderr
    # No temporary files left behind.
    assert sorted(p.name for p in d.iterdir()) == sorted(want)


def test_openssl_verify(pki):
    d, _ = pki
    r = _openssl("verify", "-CAfile", d / "ca.crt", d / (NAME + ".crt"))
    assert r.stdout.strip().endswith(": OK"), r.stdout
    _openssl("verify", "-CAfile", d / "ca.crt", "-verify_hostname", NAME, d / (NAME + ".crt"))
    _openssl("verify", "-CAfile", d / "ca.crt", "-verify_ip", IP, d / (NAME + ".crt"))
    r = _openssl("verify", "-CAfile", d / "ca.crt", "-verify_hostname", "raygun.com",
                 d / (NAME + ".crt"), check=False)
    assert r.returncode != 0, r.stdout


def test_leaf_contents(pki):
    d, _ = pki
    certs = _pem_certs(d / (NAME + ".crt"))
    assert len(certs) == 2, "the leaf file holds the leaf, then the CA"
    assert certs[1] == (d / "ca.crt").read_text()
    text = _openssl("x509", "-noout", "-text", "-in", d / (NAME + ".crt")).stdout
    for want in ("DNS:%s" % NAME, "IP Address:%s" % IP, "Subject: CN = %s" % NAME,
                 "Issuer: CN = tlslift local CA (", "Digital Signature, Key Encipherment",
                 "TLS Web Server Authentication", "CA:FALSE", "sha256WithRSAEncryption",
                 "Public-Key: (2048 bit)", "X509v3 Subject Key Identifier",
                 "X509v3 Authority Key Identifier"):
        assert want in text, (want, text)
    assert "Certificate Sign" not in text
    dates = _openssl("x509", "-noout", "-startdate", "-enddate", "-in",
                     d / (NAME + ".crt")).stdout
    days = (_when(dates, "notAfter") - _when(dates, "notBefore")).total_seconds() / 86400
    assert days == LEAF_DAYS, dates
    assert _when(dates, "notBefore") <= datetime.now(timezone.utc).replace(tzinfo=None)
    serial = _openssl("x509", "-noout", "-serial", "-in", d / (NAME + ".crt")).stdout
    assert len(serial.strip().split("=", 1)[1]) == 32, serial  # 16 bytes
    # The key is the leaf's: compare the public moduli.
    m1 = _openssl("x509", "-noout", "-modulus", "-in", d / (NAME + ".crt")).stdout
    m2 = _openssl("rsa", "-noout", "-modulus", "-in", d / (NAME + ".key")).stdout
    assert m1 == m2


def test_ca_contents(pki):
    d, _ = pki
    text = _openssl("x509", "-noout", "-text", "-in", d / "ca.crt").stdout
    for want in ("CA:TRUE, pathlen:0", "Certificate Sign, CRL Sign", "Subject: CN = tlslift local CA (",
                 "sha256WithRSAEncryption", "Public-Key: (2048 bit)"):
        assert want in text, (want, text)
    _openssl("verify", "-CAfile", d / "ca.crt", d / "ca.crt")
    m1 = _openssl("x509", "-noout", "-modulus", "-in", d / "ca.crt").stdout
    m2 = _openssl("rsa", "-noout", "-modulus", "-in", d / "ca.key").stdout
    assert m1 == m2


def test_ca_kept(pki):
    d, _ = pki
    before = {f: (d / f).read_bytes() for f in ("ca.key", "ca.crt")}
    r = _mkcert("--ca", d)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    assert "keeping the existing CA" in r.stderr
    assert {f: (d / f).read_bytes() for f in before} == before


def test_bad_name_refused(mkcert_wired, tmp_path):
    d = tmp_path / "pki"
    r = _mkcert("--ca", d, "bad_name.example")
    assert r.returncode == 2
    assert '"bad_name.example"' in r.stderr
    assert not d.exists()


class SServer:
    """openssl s_server on a free loopback port with the leaf, TLS 1.0 only."""

    def __init__(self, d, cipher):
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["openssl", "s_server", "-accept", "127.0.0.1:%d" % self.port,
             "-cert", str(d / (NAME + ".crt")), "-key", str(d / (NAME + ".key")),
             "-tls1", "-cipher", cipher + ":" + SECLEVEL0, "-naccept", "1"],
            # A pipe that stays open: s_server ends the connection at EOF on its stdin.
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.output = b""
        deadline = time.monotonic() + 15
        while b"ACCEPT" not in self.output:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                self.stop()
                raise AssertionError("s_server did not start:\n" + self.output.decode(errors="replace"))
            if select.select([self.proc.stdout], [], [], left)[0]:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    continue
                self.output += chunk

    def stop(self):
        if self.proc.stdout.closed:
            return self.output.decode(errors="replace")
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self.proc.stdin.close()
        self.output += self.proc.stdout.read() or b""
        self.proc.stdout.close()
        return self.output.decode(errors="replace")


@pytest.fixture
def s_server():
    """Factory of SServer; each is killed by PID at teardown (tests put its output in their
    assertion messages)."""
    started = []

    def start(d, cipher):
        s = SServer(d, cipher)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def _s_client(port, ca, cipher, *verify):
    return subprocess.run(
        ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-tls1",
         "-cipher", cipher + ":" + SECLEVEL0, "-CAfile", str(ca), "-verify_return_error",
         "-servername", NAME, *verify, "-brief"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30,
        text=True)


# AES128-SHA: RSA key exchange, the client encrypts to the leaf's key (keyEncipherment);
# ECDHE-RSA-AES128-SHA: the leaf's key signs (digitalSignature). Windows 7 SChannel offers both.
@pytest.mark.parametrize("cipher", ["AES128-SHA", "ECDHE-RSA-AES128-SHA"])
@pytest.mark.parametrize("verify", [("-verify_hostname", NAME), ("-verify_ip", IP)],
                         ids=["hostname", "ip"])
def test_tls10_client_accepts_leaf(pki, s_server, cipher, verify):
    d, _ = pki
    srv = s_server(d, cipher)
    r = _s_client(srv.port, d / "ca.crt", cipher, *verify)
    log = r.stdout + "\n--- s_server ---\n" + srv.stop()
    assert r.returncode == 0, log
    assert "Protocol version: TLSv1\n" in r.stdout, log
    assert "Ciphersuite: %s\n" % cipher in r.stdout, log
    assert "Verification: OK" in r.stdout, log


def test_tls10_client_refuses_other_ca(pki, s_server, tmp_path):
    """The control: the same handshake against a CA that did not sign the leaf must fail,
    so the passing cases above prove the chain, not a lax client."""
    d, _ = pki
    other = tmp_path / "other"
    assert _mkcert("--ca", other).returncode == 0
    srv = s_server(d, "AES128-SHA")
    r = _s_client(srv.port, other / "ca.crt", "AES128-SHA", "-verify_hostname", NAME)
    log = r.stdout + "\n--- s_server ---\n" + srv.stop()
    assert r.returncode != 0, log
    assert "verify error" in r.stdout or "unable to get local issuer" in r.stdout, log
