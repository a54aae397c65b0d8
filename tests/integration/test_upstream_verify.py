"""Upstream verification is always on: bad certificates and old TLS get a 502, nothing is sent."""

import re

import pytest

from harness import RawConn, assert_tlslift_error, build_request, free_port, wait_until

ERROR_LINE = re.compile(r"^\S+ (error|warn)\b.*$", re.M | re.I)


def _get(port, path="/entries?apikey=zzz"):
    with RawConn(port) as c:
        c.send(build_request("POST", path, [("Content-Length", "2")], b"{}"))
        r = c.read_response()
        if r.status >= 500:
            assert c.closed_within(5), "connection left open after tlslift's own %d" % r.status
    return r


CASES = [
    ("expired", {"cert": "expired"}),
    ("wronghost", {"cert": "wronghost"}),
    ("selfsigned", {"cert": "selfsigned"}),
    ("tls11only", {"tls11_only": True}),
]


@pytest.mark.parametrize("name,opts", CASES, ids=[c[0] for c in CASES])
def test_bad_upstream_gets_502(make_upstream, make_daemon, name, opts):
    up = make_upstream(**opts)
    d = make_daemon(up)
    r = _get(d.port)
    assert_tlslift_error(r, 502)
    s = up.stats()
    # tlslift did try (a connection came in) but nothing was forwarded.
    assert s["connections"] >= 1, s
    assert s["heads"] == 0 and s["requests"] == 0, s
    assert d.wait_log(ERROR_LINE.pattern), "no error/warn line in stderr"
    assert d.alive()
    acc = d.wait_access(1)
    assert acc and acc[-1]["status"] == "502" and acc[-1]["reason"] != "-", acc


def test_good_upstream_control(make_upstream, make_daemon):
    """The same request through a good upstream is answered (so the 502s above mean something)."""
    up = make_upstream()
    d = make_daemon(up)
    r = _get(d.port, "/echo")
    assert r.status == 200
    assert up.stats()["requests"] == 1
    assert up.stats()["sni"] == ["localhost"]


def test_ca_file_is_the_trust_store(make_upstream, make_daemon, pki):
    """Without the test CA (default trust store, route has no upstream_ca_file) the upstream fails."""
    up = make_upstream()
    d = make_daemon(up, route={"upstream_ca_file": None},
                    glob={"ca_file": "/etc/ssl/certs/ca-certificates.crt"})
    r = _get(d.port)
    assert_tlslift_error(r, 502)
    assert up.stats()["heads"] == 0


def test_global_ca_file_used_by_routes(make_upstream, make_daemon, pki):
    up = make_upstream()
    d = make_daemon(up, route={"upstream_ca_file": None}, glob={"ca_file": str(pki.ca)})
    r = _get(d.port, "/echo")
    assert r.status == 200


def test_upstream_sni_names_the_certificate(make_upstream, make_daemon):
    """upstream_sni = other.example: sent as SNI and verified against the certificate."""
    up = make_upstream(cert="wronghost")
    d = make_daemon(up, route={"upstream_sni": "other.example"})
    r = _get(d.port, "/echo")
    assert r.status == 200
    assert up.stats()["sni"] == ["other.example"]
    # Host is still the upstream host, not the SNI.
    hosts = [v for k, v in up.heads[-1]["headers"] if k.lower() == "host"]
    assert hosts == ["localhost:%d" % up.port]


def test_upstream_min_version_13_refuses_12_server(make_upstream, make_daemon):
    up = make_upstream(max_version="1.2")
    d = make_daemon(up, route={"upstream_min_version": "1.3"})
    r = _get(d.port)
    assert_tlslift_error(r, 502)
    assert up.stats()["heads"] == 0


def test_tls12_server_accepted_by_default(make_upstream, make_daemon):
    up = make_upstream(max_version="1.2")
    d = make_daemon(up)
    r = _get(d.port, "/echo")
    assert r.status == 200
    assert up.stats()["versions"] == ["TLSv1.2"]
    assert wait_until(lambda: d.access_lines() and d.access_lines()[-1].get("tls") == "1.2", 3), \
        d.access_lines()


def test_connection_refused_gets_502(make_daemon, pki):
    d = make_daemon(upstream_url="https://localhost:%d" % free_port())
    r = _get(d.port)
    assert_tlslift_error(r, 502)
    assert d.wait_log(ERROR_LINE.pattern)
    assert d.alive()
