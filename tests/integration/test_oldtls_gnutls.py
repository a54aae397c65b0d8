"""gnutls-cli limited to TLS 1.0 by its priority string (NORMAL:-VERS-ALL:+VERS-TLS1.0),
verifying the chain against the mkcert CA and the name api.raygun.com: the handshake is TLS
1.0, a POST goes through to the upstream with its body, and the response comes back."""

import json
import shutil

import pytest

from harness import gnutls_cli, http_get_close, payload, sha256

pytestmark = pytest.mark.skipif(shutil.which("gnutls-cli") is None,
                                reason="needs gnutls-cli (Debian package gnutls-bin)")

PRIO_TLS10 = "NORMAL:-VERS-ALL:+VERS-TLS1.0"


def test_gnutls_tls10(make_tls_daemon, upstream, mkcert_pki):
    d = make_tls_daemon(upstream)
    body = payload(20000)
    g = gnutls_cli(d.port, PRIO_TLS10,
                   data=http_get_close("/echo/gnutls", method="POST", body=body),
                   servername="api.raygun.com", cafile=mkcert_pki.ca)
    assert g.handshake_ok, g.describe()
    assert g.description and g.description.startswith("(TLS1.0-X.509)-"), g.describe()
    assert "The certificate is trusted" in g.out.decode("latin-1") + g.err, g.describe()
    status, _, rbody = g.response()
    assert status == 200, g.describe()
    rec = json.loads(rbody)
    assert rec["path"] == "/echo/gnutls" and rec["body_sha256"] == sha256(body), rec
    assert upstream.bodies == [body]
    assert d.wait_log(r"client \S+ speaks TLS 1\.0"), d.stderr()


def test_gnutls_tls10_wrong_name_rejected_by_client(make_tls_daemon, upstream, mkcert_pki):
    """The same client checking a name the leaf does not carry fails: the verification in the
    test above is real."""
    d = make_tls_daemon(upstream)
    g = gnutls_cli(d.port, PRIO_TLS10, data=http_get_close("/echo/x"),
                   servername="not-the-service.example", cafile=mkcert_pki.ca)
    assert g.rc != 0 and not g.http, g.describe()
    assert upstream.stats()["requests"] == 0
