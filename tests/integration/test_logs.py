"""Logs: the access-log line and its fields; secrets never reach stderr."""

import re

import pytest

from harness import RawConn, build_request, chunk_encode, exchange, payload, wait_until

TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z"
ACCESS = re.compile(
    r"^(?P<time>" + TIME + r") access route=(?P<route>\S+) client=(?P<client>127\.0\.0\.1:\d+) "
    r"method=(?P<method>\S+) path=(?P<path>\S+) status=(?P<status>\d{3}) in=(?P<in>\d+) "
    r"out=(?P<out>\d+) upstream_ms=(?P<upstream_ms>[\d.]+|-) total_ms=(?P<total_ms>[\d.]+) "
    r"tls=(?P<tls>1\.2|1\.3|-) reused=(?P<reused>[01]) reason=(?P<reason>\S+)$")
LINE = re.compile(r"^" + TIME + r" (access|error|warn|info|debug) ", re.I)

SECRETS = ["secret123", "topsecretquery", "cookiesecret", "bearertokensecret", "proxysecret"]


def _access(d, n):
    wait_until(lambda: len([l for l in d.stderr().splitlines() if " access " in l]) >= n, 3)
    lines = [l for l in d.stderr().splitlines() if " access " in l]
    assert len(lines) >= n, d.stderr()
    return lines


def _secret_request(path="/entries?apikey=topsecretquery&x=1"):
    body = b'{"m":"hello"}'
    return build_request("POST", path, [
        ("X-ApiKey", "secret123"),
        ("Cookie", "session=cookiesecret"),
        ("Authorization", "Bearer bearertokensecret"),
        ("Proxy-Authorization", "Basic proxysecret"),
        ("Content-Type", "application/json; charset=utf-8"),
        ("Content-Length", str(len(body))),
    ], body)


def test_access_line_fields(daemon, upstream):
    req = _secret_request()
    with RawConn(daemon.port) as c:
        c.send(req)
        r = c.read_response()
        client_port = c.sock.getsockname()[1]
    assert r.status == 200
    line = _access(daemon, 1)[-1]
    m = ACCESS.match(line)
    assert m, "access line does not match the contract:\n%s" % line
    f = m.groupdict()
    assert f["route"] == "test"
    assert f["client"] == "127.0.0.1:%d" % client_port
    assert f["method"] == "POST"
    assert f["path"] == "/entries"            # no query string
    assert f["status"] == "200"
    assert int(f["in"]) == len(req)           # request bytes read from the client
    assert int(f["out"]) == len(r.raw)        # response bytes written to the client
    assert f["tls"] == "1.3"
    assert f["reused"] == "0"
    assert f["reason"] == "-"
    assert float(f["total_ms"]) >= float(f["upstream_ms"]) >= 0


def test_reused_and_tls12(make_upstream, make_daemon):
    up = make_upstream(max_version="1.2")
    d = make_daemon(up)
    for _ in range(2):
        assert exchange(d.port, build_request("GET", "/echo")).status == 200
    lines = _access(d, 2)
    f = [ACCESS.match(l).groupdict() for l in lines[-2:]]
    assert [x["reused"] for x in f] == ["0", "1"]
    assert [x["tls"] for x in f] == ["1.2", "1.2"]


def test_own_response_has_reason(daemon, upstream):
    req = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"
    r = exchange(daemon.port, req)
    assert r.status == 400
    line = _access(daemon, 1)[-1]
    m = ACCESS.match(line)
    assert m, line
    assert m["status"] == "400" and m["reason"] != "-"
    assert m["tls"] == "-"
    assert int(m["out"]) == len(r.raw)
    assert 0 < int(m["in"]) <= len(req)


REFUSED = {
    "400": b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    "405": b"CONNECT api.example:443 HTTP/1.1\r\nHost: api.example:443\r\n\r\n",
    "414": build_request("GET", "/" + "a" * 9000),
    "431": build_request("GET", "/", [("X-Big", "b" * 17000)]),
}


@pytest.mark.parametrize("status", sorted(REFUSED))
def test_in_out_for_refused_requests(daemon, upstream, status):
    """in/out count the bytes of refused requests too (in: what tlslift read of the head)."""
    req = REFUSED[status]
    with RawConn(daemon.port) as c:
        c.send(req)
        r = c.read_response()
    assert r.status == int(status)
    m = ACCESS.match(_access(daemon, 1)[-1])
    assert m, daemon.stderr()
    assert m["status"] == status
    assert int(m["out"]) == len(r.raw)
    assert 0 < int(m["in"]) <= len(req), "in=%s for a %s after reading the head (%d bytes sent)" % (
        m["in"], status, len(req))


def test_upstream_failure_logged(make_upstream, make_daemon):
    up = make_upstream(cert="expired")
    d = make_daemon(up)
    assert exchange(d.port, _secret_request()).status == 502
    line = _access(d, 1)[-1]
    m = ACCESS.match(line)
    assert m and m["status"] == "502" and m["reason"] != "-", line
    # The operator gets an error line that says what failed.
    errs = [l for l in d.stderr().splitlines() if re.match(TIME + r" (error|warn) ", l, re.I)]
    assert errs, d.stderr()
    assert any(re.search(r"expire|certif|verif", l, re.I) for l in errs), errs


def test_no_secrets_at_debug_level(make_daemon, upstream, make_upstream):
    d = make_daemon(upstream, glob={"log_level": "debug"})
    exchange(d.port, _secret_request())
    exchange(d.port, _secret_request("/mirror?token=topsecretquery"))
    # Error paths too: a refused head and a failing upstream.
    exchange(d.port, _secret_request("/" + "q" * 20000 + "?k=topsecretquery"))
    bad = make_upstream(cert="selfsigned")
    d2 = make_daemon(bad, glob={"log_level": "debug"})
    exchange(d2.port, _secret_request())
    _access(d, 3)
    _access(d2, 1)
    for dd in (d, d2):
        text = dd.stderr()
        assert "debug" in text.lower(), "log_level = debug logged nothing at debug"
        for s in SECRETS:
            assert s not in text, "secret %r in stderr:\n%s" % (s, text)


def test_every_line_has_the_format(make_daemon, upstream):
    d = make_daemon(upstream, glob={"log_level": "debug"})
    exchange(d.port, build_request("GET", "/echo"))
    _access(d, 1)
    bad = [l for l in d.stderr().splitlines() if l.strip() and not LINE.match(l)]
    assert not bad, bad


def test_access_log_to_file(make_daemon, upstream, tmp_path):
    path = tmp_path / "access.log"
    path.write_text("an earlier line\n")
    d = make_daemon(upstream, glob={"access_log": str(path)})
    assert exchange(d.port, build_request("GET", "/echo?secretq=1")).status == 200
    assert wait_until(lambda: path.exists() and " access " in path.read_text(), 3)
    lines = path.read_text().splitlines()
    assert lines[0] == "an earlier line", "access_log must append"
    assert ACCESS.match(lines[-1]), lines
    assert "secretq" not in path.read_text()
    assert " access " not in d.stderr()


def test_access_log_off(make_daemon, upstream):
    d = make_daemon(upstream, glob={"access_log": "off"})
    assert exchange(d.port, build_request("GET", "/echo")).status == 200
    d.assert_serving(upstream)
    assert " access " not in d.stderr()


def test_in_out_with_chunked_bodies(daemon, upstream):
    body = payload(50000)
    req = build_request("POST", "/mirror", [("Transfer-Encoding", "chunked")], chunk_encode(body))
    with RawConn(daemon.port) as c:
        c.send(req)
        r = c.read_response()
    assert r.status == 200
    m = ACCESS.match(_access(daemon, 1)[-1])
    assert int(m["in"]) == len(req)
    assert int(m["out"]) == len(r.raw)
