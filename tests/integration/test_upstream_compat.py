"""Upstreams as real servers are set up: ECDSA keys, intermediate CAs, other groups and suites.

Each case must verify and answer 200 through tlslift (and an incomplete
chain must not).
"""

import pytest

from harness import RawConn, assert_tlslift_error, build_request

CASES = [
    ("ecdsa_13", dict(cert="ec")),
    ("ecdsa_12", dict(cert="ec", max_version="1.2")),
    ("intermediate_13", dict(cert="chain")),
    ("intermediate_12", dict(cert="chain", max_version="1.2")),
    # The server accepts only P-384: a TLS 1.3 client that offered another
    # key share first gets a HelloRetryRequest (without a cookie).
    ("hello_retry_p384", dict(curve="secp384r1")),
    ("p384_12", dict(curve="secp384r1", max_version="1.2")),
    ("rsa_aes256gcm_12", dict(max_version="1.2", ciphers="ECDHE-RSA-AES256-GCM-SHA384")),
    ("rsa_chacha_12", dict(max_version="1.2", ciphers="ECDHE-RSA-CHACHA20-POLY1305")),
    ("ecdsa_aes128gcm_12", dict(cert="ec", max_version="1.2", ciphers="ECDHE-ECDSA-AES128-GCM-SHA256")),
]


@pytest.mark.parametrize("name,opts", CASES, ids=[c[0] for c in CASES])
def test_upstream_variant_works(make_upstream, make_daemon, name, opts):
    up = make_upstream(**opts)
    d = make_daemon(up)
    for i in range(2):  # the second request also covers pooled reuse
        with RawConn(d.port) as c:
            c.send(build_request("GET", "/echo/%d" % i, [("Connection", "close")]))
            r = c.read_response()
        assert r.status == 200, (name, r, r.body)
    assert up.stats()["requests"] == 2
    assert up.stats()["handshakes"] == 1


def test_incomplete_chain_502(make_upstream, make_daemon):
    """A server that leaves out its intermediate cannot be verified against the root alone."""
    up = make_upstream(cert="chain_noint")
    d = make_daemon(up)
    with RawConn(d.port) as c:
        c.send(build_request("GET", "/echo"))
        assert_tlslift_error(c.read_response(), 502)
    assert up.stats()["heads"] == 0


def test_weak_only_tls12_suites_refused(make_upstream, make_daemon):
    """Only ECDHE + AEAD suites: a TLS 1.2 server offering only RSA key exchange / CBC gets a 502."""
    up = make_upstream(max_version="1.2", ciphers="AES128-SHA:AES256-SHA256")
    d = make_daemon(up)
    with RawConn(d.port) as c:
        c.send(build_request("GET", "/echo"))
        assert_tlslift_error(c.read_response(), 502)
    assert up.stats()["heads"] == 0
