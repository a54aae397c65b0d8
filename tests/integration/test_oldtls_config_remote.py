"""Old TLS (tls_min_version = 1.0 or 1.1) on a non-loopback listen without allow_remote is a
configuration error: `tlslift -t -c FILE` exits 1 with `FILE:LINE: reason`, LINE being the
route's section, the reason naming allow_remote. With allow_remote = yes the same route, or
the same route on loopback, is fine (and its certificate loads)."""

import re
import subprocess

import pytest

from harness import tlslift_bin

ROUTE = """\
[tlslift]
ca_file = {ca}

; the legacy app's service, mapped to this host
[route raygun]
listen = {listen}
upstream = https://api.raygun.com
tls_cert = {crt}
tls_key = {key}
tls_min_version = {version}
{extra}
"""


@pytest.fixture
def check(tmp_path, pki, mkcert_pki, tlslift_binary):
    crt, key = mkcert_pki.leaf("api.raygun.com", "localhost", "127.0.0.1")

    def run_check(listen, version, extra=""):
        path = tmp_path / "remote.ini"
        path.write_text(ROUTE.format(ca=pki.ca, listen=listen, crt=crt, key=key,
                                     version=version, extra=extra))
        r = subprocess.run([str(tlslift_binary), "-t", "-c", str(path)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20, text=True)
        return r.returncode, r.stdout + r.stderr, path

    return run_check


@pytest.mark.parametrize("version", ["1.0", "1.1"])
@pytest.mark.parametrize("listen", ["0.0.0.0:18443", "192.0.2.10:443", "[::]:18443"])
def test_old_tls_on_remote_listen_refused(check, listen, version):
    rc, out, path = check(listen, version)
    assert rc == 1, out
    assert "configuration ok" not in out
    line = ROUTE.splitlines().index("[route raygun]") + 1
    m = re.search(re.escape(str(path)) + r":(\d+): (.*)", out)
    assert m, out
    assert int(m.group(1)) == line, out
    assert "allow_remote" in m.group(2) and "raygun" in m.group(2), out


@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_old_tls_on_remote_listen_with_allow_remote(check, version):
    rc, out, _ = check("0.0.0.0:18443", version, "allow_remote = yes")
    assert rc == 0 and "configuration ok" in out, out


@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_old_tls_on_loopback(check, version):
    rc, out, _ = check("127.0.0.1:18443", version)
    assert rc == 0 and "configuration ok" in out, out


def test_config_check_loads_the_certificate(check, tmp_path):
    """-t really loads tls_cert/tls_key: a key that does not exist is an error at the route."""
    rc, out, path = check("127.0.0.1:18443", "1.0")
    assert rc == 0, out
    text = path.read_text().replace("tls_key = ", "tls_key = /nonexistent")
    path.write_text(text)
    r = subprocess.run([str(tlslift_bin()), "-t", "-c", str(path)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=20, text=True)
    assert r.returncode == 1 and re.search(re.escape(str(path)) + r":\d+: ", r.stderr), r
