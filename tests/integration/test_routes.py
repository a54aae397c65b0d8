"""Several routes in one daemon: each listener goes to its own upstream with its own limits."""

import json
import socket

import pytest

from harness import RawConn, build_request, exchange, free_port, wait_until


def test_two_routes_two_upstreams(make_daemon, make_upstream, pki):
    a, b = make_upstream(), make_upstream(max_version="1.2")
    pa, pb = free_port(), free_port()
    d = make_daemon(routes=[
        ("alpha", {"listen": "127.0.0.1:%d" % pa, "upstream": a.url, "upstream_ca_file": str(pki.ca)}),
        ("beta", {"listen": "127.0.0.1:%d" % pb, "upstream": b.url, "upstream_ca_file": str(pki.ca),
                  "max_request_line": "256"}),
    ])
    d.wait_listening()
    ra = exchange(pa, build_request("GET", "/echo/a"))
    rb = exchange(pb, build_request("GET", "/echo/b"))
    assert ra.status == rb.status == 200
    assert [h["path"] for h in a.heads] == ["/echo/a"]
    assert [h["path"] for h in b.heads] == ["/echo/b"]
    assert ["Host", "localhost:%d" % b.port] in json.loads(rb.body)["headers"]
    # The limit of beta is beta's alone.
    long_path = "/echo/" + "x" * 400
    assert exchange(pa, build_request("GET", long_path)).status == 200
    assert exchange(pb, build_request("GET", long_path)).status == 414
    acc = d.wait_access(4)
    assert [x["route"] for x in acc[:2]] == ["alpha", "beta"]
    assert [x["tls"] for x in acc[:2]] == ["1.3", "1.2"]


def test_ipv6_loopback_listen(make_daemon, upstream, pki):
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
        port = s.getsockname()[1]
        s.close()
    except OSError as e:
        pytest.skip("no IPv6 loopback: %s" % e)
    d = make_daemon(routes=[("six", {"listen": "[::1]:%d" % port, "upstream": upstream.url,
                                     "upstream_ca_file": str(pki.ca)})], start=False)
    d.port = None
    d.start()

    def up():
        try:
            socket.create_connection(("::1", port), timeout=0.5).close()
            return True
        except OSError:
            return False
    assert wait_until(up, 5), d.stderr()
    with RawConn(port, host="::1") as c:
        c.send(build_request("GET", "/echo/v6", host="[::1]:%d" % port))
        r = c.read_response()
    assert r.status == 200
    assert upstream.heads[-1]["path"] == "/echo/v6"
    acc = d.wait_access(1)
    assert acc[-1]["client"].startswith("[::1]:") or acc[-1]["client"].startswith("::1"), acc[-1]["_line"]
