"""TLS_RSA_WITH_3DES_EDE_CBC_SHA (what XP/2003 SChannel needs) is refused by default and
accepted with `tls_legacy_3des = yes`; enabling it does not make it win over AES.

The client offering only 3DES is gnutls-cli (TLS 1.0, RSA key exchange, 3DES-CBC, SHA1):
the OpenSSL 3 on the Debian 12 test machines offers no DES-CBC3-SHA suite even at security
level 0, so `openssl s_client -cipher DES-CBC3-SHA` runs only where the local OpenSSL has it.
"""

import json
import shutil
import subprocess

import pytest

from harness import SECLEVEL0, gnutls_cli, http_get_close, s_client

PRIO_3DES = "NORMAL:-VERS-ALL:+VERS-TLS1.0:-CIPHER-ALL:+3DES-CBC:-KX-ALL:+RSA:-MAC-ALL:+SHA1"

needs_gnutls = pytest.mark.skipif(shutil.which("gnutls-cli") is None,
                                  reason="needs gnutls-cli (Debian package gnutls-bin)")


def _openssl_has_3des():
    if shutil.which("openssl") is None:
        return False
    r = subprocess.run(["openssl", "ciphers", "DES-CBC3-SHA:" + SECLEVEL0],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
    return r.returncode == 0 and b"DES-CBC3-SHA" in r.stdout


@needs_gnutls
def test_3des_refused_by_default(make_tls_daemon, upstream, mkcert_pki):
    d = make_tls_daemon(upstream)
    g = gnutls_cli(d.port, PRIO_3DES, data=http_get_close("/echo/3des-off"),
                   servername="api.raygun.com", cafile=mkcert_pki.ca)
    assert not g.handshake_ok and g.rc != 0, g.describe()
    assert "Handshake failed" in g.err or "alert" in g.err.lower(), g.describe()
    assert upstream.stats()["requests"] == 0
    # The refusal does not stop the listener: an AES client gets through.
    g = gnutls_cli(d.port, "NORMAL:-VERS-ALL:+VERS-TLS1.0", data=http_get_close("/echo/aes"),
                   servername="api.raygun.com", cafile=mkcert_pki.ca)
    assert g.handshake_ok and g.response()[0] == 200, g.describe()


@needs_gnutls
def test_3des_accepted_when_enabled(make_tls_daemon, upstream, mkcert_pki):
    d = make_tls_daemon(upstream, tls_legacy_3des="yes")
    g = gnutls_cli(d.port, PRIO_3DES, data=http_get_close("/echo/3des-on"),
                   servername="api.raygun.com", cafile=mkcert_pki.ca)
    assert g.handshake_ok, g.describe()
    assert g.description == "(TLS1.0-X.509)-(RSA)-(3DES-CBC)-(SHA1)", g.describe()
    status, _, body = g.response()
    assert status == 200, g.describe()
    assert json.loads(body)["path"] == "/echo/3des-on"
    assert [r["path"] for r in upstream.requests] == ["/echo/3des-on"]


@needs_gnutls
def test_3des_enabled_does_not_beat_aes(make_tls_daemon, upstream, mkcert_pki):
    """A client offering 3DES and AES (3DES first) still gets AES: 3DES is the last resort."""
    d = make_tls_daemon(upstream, tls_legacy_3des="yes")
    prio = ("NORMAL:-VERS-ALL:+VERS-TLS1.0:-CIPHER-ALL:+3DES-CBC:+AES-128-CBC:-KX-ALL:+RSA:"
            "-MAC-ALL:+SHA1")
    g = gnutls_cli(d.port, prio, data=http_get_close("/echo/pref"),
                   servername="api.raygun.com", cafile=mkcert_pki.ca)
    assert g.handshake_ok, g.describe()
    assert g.description == "(TLS1.0-X.509)-(RSA)-(AES-128-CBC)-(SHA1)", g.describe()
    assert g.response()[0] == 200, g.describe()


@pytest.mark.skipif(not _openssl_has_3des(),
                    reason="the local OpenSSL offers no DES-CBC3-SHA suite (`openssl ciphers "
                           "DES-CBC3-SHA:@SECLEVEL=0` fails); gnutls-cli covers 3DES")
@pytest.mark.parametrize("enabled", [False, True], ids=["default", "tls_legacy_3des"])
def test_3des_openssl(make_tls_daemon, upstream, mkcert_pki, enabled):
    route = {"tls_legacy_3des": "yes"} if enabled else {}
    d = make_tls_daemon(upstream, **route)
    s = s_client(d.port, "-tls1", "-cipher", "DES-CBC3-SHA:" + SECLEVEL0,
                 data=http_get_close("/echo/3des"), servername="api.raygun.com",
                 cafile=mkcert_pki.ca)
    if enabled:
        assert s.handshake_ok and s.cipher == "DES-CBC3-SHA", s.describe()
        assert s.response()[0] == 200, s.describe()
    else:
        assert not s.handshake_ok, s.describe()
        assert upstream.stats()["requests"] == 0
