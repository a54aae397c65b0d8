"""TLS 1.0 and 1.1 clients (`openssl s_client -tls1` / `-tls1_1`), one suite at a time, get
through a tls_cert listener (tls_min_version = 1.0) to the upstream and back.

For each version and each suite the legacy engine offers (ECDHE_RSA and RSA key exchange with
AES_128/256_CBC_SHA), s_client offers only that suite, verifies the chain (mkcert CA) and the
name api.raygun.com, and sends a POST with a body; the test checks the negotiated version and
suite, that the upstream received the request with the body intact, and that the response
came back through the tunnel.
"""

import json
import shutil

import pytest

from harness import SECLEVEL0, http_get_close, payload, s_client, sha256

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")

VERSIONS = [("-tls1", "TLSv1", "1.0"), ("-tls1_1", "TLSv1.1", "1.1")]
SUITES = ["AES128-SHA", "AES256-SHA", "ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES256-SHA"]


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("flag,protocol,version", VERSIONS, ids=["tls1.0", "tls1.1"])
def test_suite(make_tls_daemon, upstream, mkcert_pki, flag, protocol, version, suite):
    d = make_tls_daemon(upstream)
    body = payload(3000)
    path = "/echo/%s/%s" % (version, suite)
    s = s_client(d.port, flag, "-cipher", suite + ":" + SECLEVEL0,
                 data=http_get_close(path, method="POST", body=body,
                                     headers=[("Content-Type", "application/octet-stream")]),
                 servername="api.raygun.com", cafile=mkcert_pki.ca)
    assert s.handshake_ok, s.describe()
    assert (s.protocol, s.cipher) == (protocol, suite), s.describe()
    assert s.verify == 0, s.describe()
    # The daemon ended the session with close_notify: s_client exits 0, no "unexpected eof".
    assert s.rc == 0 and "unexpected eof" not in s.err, s.describe()
    status, headers, rbody = s.response()
    assert status == 200, s.describe()
    rec = json.loads(rbody)
    assert rec["method"] == "POST" and rec["path"] == path, rec
    assert rec["body_len"] == len(body) and rec["body_sha256"] == sha256(body), rec
    # The upstream saw exactly this request, with the body intact.
    assert [r["path"] for r in upstream.requests] == [path]
    assert upstream.bodies[-1] == body
    assert d.wait_log(r"client \S+ speaks TLS %s" % version.replace(".", r"\.")), d.stderr()
    acc = d.wait_access(1)
    assert acc[-1]["status"] == "200" and acc[-1]["path"] == path, acc[-1]["_line"]
