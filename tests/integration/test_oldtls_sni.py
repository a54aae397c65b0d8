"""Two routes on one TLS listen, chosen by SNI: route "a" (server_name = a.test, its own leaf
for a.test, upstream A) and route "b" (server_name = b.test, leaf for b.test, upstream B), both
tls_min_version = 1.0. For TLS 1.0 (legacy engine), 1.2 and 1.3 (modern engine) clients: the
certificate presented and the upstream that receives the request match the SNI; no SNI, or
a name no route has, gets the first route. Plain HTTP on the same port picks by Host."""

import json
import shutil

import pytest

from harness import SECLEVEL0, build_request, exchange, free_port, http_get_close, s_client

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")

CLIENTS = {
    "tls1.0": ("-tls1", "-cipher", "DEFAULT:" + SECLEVEL0),
    "tls1.2": ("-tls1_2",),
    "tls1.3": ("-tls1_3",),
}


@pytest.fixture
def two_routes(make_daemon, make_upstream, mkcert_pki, pki):
    ua, ub = make_upstream(), make_upstream()
    port = free_port()
    routes = []
    for name, up in (("a", ua), ("b", ub)):
        crt, key = mkcert_pki.leaf("%s.test" % name)
        routes.append((name, {
            "listen": "127.0.0.1:%d" % port,
            "server_name": "%s.test" % name,
            "upstream": up.url,
            "upstream_ca_file": str(pki.ca),
            "tls_cert": str(crt),
            "tls_key": str(key),
            "tls_min_version": "1.0",
        }))
    d = make_daemon(routes=routes, glob={"log_level": "debug"})
    return d, {"a": ua, "b": ub}


@pytest.mark.parametrize("client", sorted(CLIENTS))
@pytest.mark.parametrize("sni,route", [("a.test", "a"), ("b.test", "b"), ("B.Test", "b"),
                                       (None, "a"), ("c.test", "a")],
                         ids=["a", "b", "b-mixed-case", "no-sni", "unknown-sni"])
def test_sni_picks_route(two_routes, mkcert_pki, client, sni, route):
    d, ups = two_routes
    path = "/echo/%s/%s" % (client, sni or "none")
    # Verify the name only when the client asked for one the route should serve.
    verify_name = sni if sni and sni.lower().startswith(route) else None
    s = s_client(d.port, *CLIENTS[client], data=http_get_close(path, host=sni or "a.test"),
                 servername=verify_name, sni=sni, cafile=mkcert_pki.ca)
    assert s.handshake_ok, s.describe()
    assert s.subject == "CN = %s.test" % route, s.describe()
    status, _, body = s.response()
    assert status == 200, s.describe()
    assert json.loads(body)["path"] == path
    other = "b" if route == "a" else "a"
    assert [r["path"] for r in ups[route].requests] == [path]
    assert ups[other].stats()["requests"] == 0
    acc = d.wait_access(1)
    assert acc[-1]["route"] == route, acc[-1]["_line"]


def test_plain_http_picks_route_by_host(two_routes):
    d, ups = two_routes
    r = exchange(d.port, build_request("GET", "/echo/host-b", host="b.test"))
    assert r.status == 200, r
    r = exchange(d.port, build_request("GET", "/echo/host-a", host="a.test"))
    assert r.status == 200, r
    r = exchange(d.port, build_request("GET", "/echo/host-none", host="elsewhere.example"))
    assert r.status == 200, r
    assert [x["path"] for x in ups["b"].requests] == ["/echo/host-b"]
    assert [x["path"] for x in ups["a"].requests] == ["/echo/host-a", "/echo/host-none"]
