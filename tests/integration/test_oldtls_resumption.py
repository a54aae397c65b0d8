"""TLS 1.0/1.1 session resumption: a session saved by `openssl s_client -sess_out` is resumed
by `-sess_in` on a new connection ("Reused" in s_client's report), and a request goes through
the resumed session. A session the daemon never issued is not "resumed" (a full handshake
instead), so the check can fail.
"""

import json
import shutil

import pytest

from harness import SECLEVEL0, http_get_close, s_client

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


@pytest.mark.parametrize("flag,protocol", [("-tls1", "TLSv1"), ("-tls1_1", "TLSv1.1")],
                         ids=["tls1.0", "tls1.1"])
@pytest.mark.parametrize("suite", ["ECDHE-RSA-AES128-SHA", "AES256-SHA"])
def test_resumption(make_tls_daemon, upstream, mkcert_pki, tmp_path, flag, protocol, suite):
    d = make_tls_daemon(upstream)
    sess = tmp_path / "session.pem"
    common = (flag, "-cipher", suite + ":" + SECLEVEL0)
    first = s_client(d.port, *common, "-sess_out", sess, data=http_get_close("/echo/first"),
                     servername="api.raygun.com", cafile=mkcert_pki.ca)
    assert first.handshake_ok and not first.reused, first.describe()
    assert first.protocol == protocol and first.response()[0] == 200, first.describe()
    assert sess.exists() and sess.stat().st_size > 0, first.describe()

    second = s_client(d.port, *common, "-sess_in", sess, data=http_get_close("/echo/second"),
                      servername="api.raygun.com", cafile=mkcert_pki.ca)
    assert second.handshake_ok, second.describe()
    assert second.reused, "the session was not resumed:\n" + second.describe()
    assert second.protocol == protocol and second.cipher == suite, second.describe()
    status, _, body = second.response()
    assert status == 200, second.describe()
    assert json.loads(body)["path"] == "/echo/second"
    assert [r["path"] for r in upstream.requests] == ["/echo/first", "/echo/second"]


def test_unknown_session_gets_full_handshake(make_tls_daemon, upstream, mkcert_pki, tmp_path):
    """A session saved from one daemon is not in another daemon's cache: a new session."""
    sess = tmp_path / "session.pem"
    d1 = make_tls_daemon(upstream)
    first = s_client(d1.port, "-tls1", "-cipher", "AES128-SHA:" + SECLEVEL0, "-sess_out", sess,
                     data=http_get_close("/echo/one"), servername="api.raygun.com",
                     cafile=mkcert_pki.ca)
    assert first.handshake_ok and sess.exists(), first.describe()
    d1.expect_exit = True  # stopped by the test
    assert d1.stop() == 0, d1.stderr()
    d2 = make_tls_daemon(upstream)
    second = s_client(d2.port, "-tls1", "-cipher", "AES128-SHA:" + SECLEVEL0, "-sess_in", sess,
                      data=http_get_close("/echo/two"), servername="api.raygun.com",
                      cafile=mkcert_pki.ca)
    assert second.handshake_ok and not second.reused, second.describe()
    assert second.response()[0] == 200, second.describe()
