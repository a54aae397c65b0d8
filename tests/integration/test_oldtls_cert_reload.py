"""Certificates are reloaded with the configuration (SIGHUP): after the files behind
tls_cert/tls_key are replaced, new TLS 1.0 and TLS 1.3 connections get the new certificate,
while a keep-alive TLS 1.0 connection made before the reload goes on working (its
certificate and session cache live as long as it does). A reload with a broken certificate
fails and leaves the previous one serving."""

import os
import re
import shutil
import signal

import pytest

from harness import (SECLEVEL0, build_request, http_get_close, legacy_client_context, s_client,
                     tls_conn, wait_until)

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")

NAMES = ("api.raygun.com", "localhost", "127.0.0.1")


def _install(src, dst):
    for s, t in zip(src, dst):
        tmp = t.with_suffix(".new")
        shutil.copyfile(s, tmp)
        os.chmod(tmp, 0o600)
        os.replace(tmp, t)


def _subject(d, flag, mkcert_pki):
    extra = ("-cipher", "DEFAULT:" + SECLEVEL0) if flag in ("-tls1", "-tls1_1") else ()
    s = s_client(d.port, flag, *extra, data=http_get_close("/echo/s"),
                 servername="api.raygun.com", cafile=mkcert_pki.ca)
    assert s.handshake_ok and s.response()[0] == 200, s.describe()
    return s.subject


def _hup(d, count):
    """SIGHUP, then wait until the COUNTth reload outcome is logged."""
    os.kill(d.proc.pid, signal.SIGHUP)
    ok = wait_until(lambda: len(re.findall(r"configuration reloaded|reload failed",
                                           d.stderr())) >= count, 5)
    assert ok, "no reload outcome logged:\n" + d.stderr()


def test_reload_swaps_certificate(make_tls_daemon, upstream, mkcert_pki, tmp_path):
    old = mkcert_pki.leaf(*NAMES)
    new = mkcert_pki.leaf("reloaded.test", *NAMES)
    files = (tmp_path / "route.crt", tmp_path / "route.key")
    _install(old, files)
    d = make_tls_daemon(upstream, tls_cert=str(files[0]), tls_key=str(files[1]))
    assert _subject(d, "-tls1", mkcert_pki) == "CN = api.raygun.com"
    assert _subject(d, "-tls1_3", mkcert_pki) == "CN = api.raygun.com"

    ctx = legacy_client_context("1.0", cafile=mkcert_pki.ca)
    with tls_conn(d.port, ctx, server_hostname="api.raygun.com") as kept:
        kept.send(build_request("GET", "/echo/before", [("Host", "api.raygun.com")]))
        assert kept.read_response().status == 200

        _install(new, files)
        _hup(d, 1)
        assert "configuration reloaded" in d.stderr(), d.stderr()

        assert _subject(d, "-tls1", mkcert_pki) == "CN = reloaded.test"
        assert _subject(d, "-tls1_1", mkcert_pki) == "CN = reloaded.test"
        assert _subject(d, "-tls1_3", mkcert_pki) == "CN = reloaded.test"

        # The connection made before the reload still works, with the old certificate.
        kept.send(build_request("GET", "/echo/after", [("Host", "api.raygun.com")]))
        r = kept.read_response()
        assert r.status == 200, r
        assert dict(x[0] for x in kept.sock.getpeercert()["subject"])["commonName"] == \
            "api.raygun.com"
    paths = [x["path"] for x in upstream.requests]
    assert "/echo/before" in paths and "/echo/after" in paths


def test_reload_with_broken_certificate_keeps_old(make_tls_daemon, upstream, mkcert_pki,
                                                   tmp_path):
    old = mkcert_pki.leaf(*NAMES)
    files = (tmp_path / "route.crt", tmp_path / "route.key")
    _install(old, files)
    d = make_tls_daemon(upstream, tls_cert=str(files[0]), tls_key=str(files[1]))
    files[0].write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n"
                        "-----END CERTIFICATE-----\n")
    _hup(d, 1)
    assert "reload failed" in d.stderr(), d.stderr()
    assert d.alive()
    assert _subject(d, "-tls1", mkcert_pki) == "CN = api.raygun.com"
    assert _subject(d, "-tls1_2", mkcert_pki) == "CN = api.raygun.com"
    d.assert_serving(upstream)
