"""curl pinned to TLS 1.0 (--tlsv1.0 --tls-max 1.0, OpenSSL 3 needing DEFAULT:@SECLEVEL=0),
reaching https://api.raygun.com:PORT/ through --resolve (the hosts-file mapping of a real
setup) and trusting the mkcert CA: a POST with a body reaches the upstream, the response
comes back, and curl reports TLS 1.0."""

import json
import re
import shutil
import subprocess

import pytest

from harness import SECLEVEL0, payload, sha256

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")


def _curl(port, path, mkcert_pki, extra=(), timeout=20):
    url = "https://api.raygun.com:%d%s" % (port, path)
    cmd = ["curl", "-sS", "-v", "--max-time", "15", "--tlsv1.0", "--tls-max", "1.0",
           "--ciphers", "DEFAULT:" + SECLEVEL0, "--cacert", str(mkcert_pki.ca),
           "--resolve", "api.raygun.com:%d:127.0.0.1" % port, *extra, url]
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)


def test_curl_tls10(make_tls_daemon, upstream, mkcert_pki, tmp_path):
    d = make_tls_daemon(upstream)
    body = payload(5000)
    f = tmp_path / "body.bin"
    f.write_bytes(body)
    r = _curl(d.port, "/echo/curl?k=v", mkcert_pki,
              ["-X", "POST", "--data-binary", "@%s" % f, "-H", "Content-Type: application/json"])
    err = r.stderr.decode("latin-1")
    assert r.returncode == 0, err
    m = re.search(r"SSL connection using (\S+) / (\S+)", err)
    assert m and m.group(1) in ("TLSv1", "TLSv1.0"), err
    rec = json.loads(r.stdout)
    assert rec["method"] == "POST" and rec["path"] == "/echo/curl?k=v", rec
    assert rec["body_sha256"] == sha256(body), rec
    assert upstream.bodies == [body]
    assert d.wait_log(r"client \S+ speaks TLS 1\.0"), d.stderr()


def test_curl_tls10_large_download(make_tls_daemon, upstream, mkcert_pki, tmp_path):
    d = make_tls_daemon(upstream)
    out = tmp_path / "out.bin"
    r = _curl(d.port, "/size/300000", mkcert_pki, ["-o", str(out)])
    assert r.returncode == 0, r.stderr.decode("latin-1")
    assert out.read_bytes() == payload(300000)
