"""The admin endpoint: /healthz, /metrics in the Prometheus text format (checked
by a strict parser below), and counters that move with the traffic."""

import http.client
import math
import os
import re
import signal
import socket


from harness import RawConn, build_request, free_port, wait_until

# --------------------------------------------------------------------------
# A strict parser for the Prometheus text exposition format 0.0.4
# --------------------------------------------------------------------------

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
VALUE = r"[+-]?(?:Inf|NaN|[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?)"
SAMPLE_RE = re.compile(r"^(%s)(\{.*\})? (%s)(?: (-?[0-9]+))?$" % (NAME, VALUE))
LABEL_RE = re.compile(r'(%s)="((?:[^"\\\n]|\\[\\"n])*)"' % LABEL)
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


class ParseError(AssertionError):
    pass


def parse_labels(text, lineno):
    """'{a="x",b="y"}' -> (('a','x'), ('b','y'))."""
    inner = text[1:-1]
    out = []
    pos = 0
    while pos < len(inner):
        m = LABEL_RE.match(inner, pos)
        if not m:
            raise ParseError("line %d: bad label at %r" % (lineno, inner[pos:]))
        value = re.sub(r"\\(.)", lambda e: {"n": "\n"}.get(e.group(1), e.group(1)), m.group(2))
        out.append((m.group(1), value))
        pos = m.end()
        if pos < len(inner):
            if inner[pos] != ",":
                raise ParseError("line %d: expected ',' in labels at %r" % (lineno, inner[pos:]))
            pos += 1
            if pos == len(inner):
                break  # a trailing comma is allowed
    names = [k for k, _ in out]
    if len(set(names)) != len(names):
        raise ParseError("line %d: duplicate label name in %s" % (lineno, text))
    return tuple(out)


def family_of(name, types):
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and types.get(name[:-len(suffix)]) in ("histogram", "summary"):
            return name[:-len(suffix)]
    return name


def parse_prometheus(text, require_help=True):
    """-> (families {name: {"type", "help", "samples": {(name, labels): value}}}, samples dict).

    Strict: every line is a HELP, a TYPE or a sample; TYPE precedes the
    family's samples and appears once; a family's lines are contiguous; no
    sample appears twice; histograms have cumulative buckets ending in +Inf
    equal to _count, and a _sum.
    """
    if not text.endswith("\n"):
        raise ParseError("the exposition does not end with a newline")
    fams = {}
    types = {}
    samples = {}
    done = set()        # families whose group has ended
    current = None
    for lineno, line in enumerate(text.split("\n")[:-1], 1):
        if line == "":
            raise ParseError("line %d: empty line" % lineno)
        if line.startswith("#"):
            m = re.match(r"^# (HELP|TYPE) (%s) (.*)$" % NAME, line)
            if not m:
                if re.match(r"^# (HELP|TYPE)\b", line):
                    raise ParseError("line %d: malformed %r" % (lineno, line))
                continue  # a plain comment
            kind, name, rest = m.groups()
            if name in done:
                raise ParseError("line %d: %s for %s after its group ended" % (lineno, kind, name))
            if current != name and current is not None:
                done.add(current)
            current = name
            f = fams.setdefault(name, {"type": None, "help": None, "samples": {}})
            if kind == "TYPE":
                if rest not in TYPES:
                    raise ParseError("line %d: unknown type %r" % (lineno, rest))
                if f["type"] is not None:
                    raise ParseError("line %d: second TYPE for %s" % (lineno, name))
                if f["samples"]:
                    raise ParseError("line %d: TYPE for %s after its samples" % (lineno, name))
                f["type"] = rest
                types[name] = rest
            else:
                if f["help"] is not None:
                    raise ParseError("line %d: second HELP for %s" % (lineno, name))
                if not rest.strip():
                    raise ParseError("line %d: empty HELP for %s" % (lineno, name))
                f["help"] = rest
            continue
        m = SAMPLE_RE.match(line)
        if not m:
            raise ParseError("line %d: not a sample: %r" % (lineno, line))
        name, labels, value = m.group(1), m.group(2), m.group(3)
        labels = parse_labels(labels, lineno) if labels else ()
        fam = family_of(name, types)
        if fam in done:
            raise ParseError("line %d: sample of %s outside its group" % (lineno, fam))
        if current != fam and current is not None:
            done.add(current)
        current = fam
        f = fams.setdefault(fam, {"type": None, "help": None, "samples": {}})
        if f["type"] is None:
            raise ParseError("line %d: sample %s without a # TYPE line" % (lineno, name))
        if require_help and f["help"] is None:
            raise ParseError("line %d: sample %s without a # HELP line" % (lineno, name))
        if f["type"] in ("counter", "gauge", "untyped") and name != fam:
            raise ParseError("line %d: sample %s in family %s" % (lineno, name, fam))
        key = (name, labels)
        if key in samples:
            raise ParseError("line %d: duplicate sample %s%r" % (lineno, name, labels))
        v = float(value.replace("Inf", "inf"))
        if f["type"] == "counter" and (v < 0 or math.isnan(v)):
            raise ParseError("line %d: counter %s is %s" % (lineno, name, value))
        samples[key] = v
        f["samples"][key] = v
    for name, f in fams.items():
        if f["type"] == "histogram":
            check_histogram(name, f)
    return fams, samples


def check_histogram(name, f):
    series = {}
    for (sname, labels), v in f["samples"].items():
        rest = tuple(kv for kv in labels if kv[0] != "le")
        s = series.setdefault(rest, {"buckets": [], "sum": None, "count": None})
        if sname == name + "_bucket":
            le = [val for k, val in labels if k == "le"]
            if len(le) != 1:
                raise ParseError("%s_bucket without le: %r" % (name, labels))
            s["buckets"].append((float(le[0].replace("Inf", "inf")), v))
        elif sname == name + "_sum":
            s["sum"] = v
        elif sname == name + "_count":
            s["count"] = v
        else:
            raise ParseError("sample %s in histogram %s" % (sname, name))
    for rest, s in series.items():
        b = s["buckets"]
        if not b or s["count"] is None or s["sum"] is None:
            raise ParseError("histogram %s%r lacks buckets, _sum or _count" % (name, rest))
        bounds = [x for x, _ in b]
        if bounds != sorted(bounds) or len(set(bounds)) != len(bounds):
            raise ParseError("histogram %s%r: le not increasing: %r" % (name, rest, bounds))
        if bounds[-1] != math.inf:
            raise ParseError("histogram %s%r: no +Inf bucket" % (name, rest))
        counts = [c for _, c in b]
        if any(a > c for a, c in zip(counts, counts[1:])):
            raise ParseError("histogram %s%r: buckets not cumulative: %r" % (name, rest, b))
        if counts[-1] != s["count"]:
            raise ParseError("histogram %s%r: +Inf bucket %s != _count %s"
                             % (name, rest, counts[-1], s["count"]))
        if s["sum"] < 0:
            raise ParseError("histogram %s%r: negative _sum" % (name, rest))


def test_parser_rejects_bad_expositions():
    """The parser is strict enough to fail: each of these must be rejected."""
    good = ("# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 3\n"
            "# HELP h H.\n# TYPE h histogram\n"
            "h_bucket{le=\"0.1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.3\nh_count 2\n")
    parse_prometheus(good)
    bad = [
        good.replace("a_total{x=\"1\"} 3", "a_total{x=\"1\"} three"),
        good.replace("# TYPE a_total counter\n", ""),
        good.replace("# HELP a_total A.\n", ""),
        good.replace("h_bucket{le=\"+Inf\"} 2", "h_bucket{le=\"+Inf\"} 3"),
        good.replace("h_bucket{le=\"0.1\"} 1", "h_bucket{le=\"0.1\"} 5"),
        good.replace("h_bucket{le=\"+Inf\"} 2\n", ""),
        good + "a_total{x=\"2\"} 1\n",
        good + "a_total{x=\"1\"} 4\n",
        good.rstrip("\n"),
        good.replace("{x=\"1\"}", "{x=1}"),
        good + "\n",
        good.replace("counter", "countr"),
    ]
    accepted = []
    for i, text in enumerate(bad):
        try:
            parse_prometheus(text)
            accepted.append(i)
        except ParseError:
            pass
    assert not accepted, "the parser accepted bad expositions %r" % accepted


# --------------------------------------------------------------------------
# The endpoint
# --------------------------------------------------------------------------

def admin_get(port, path, method="GET", timeout=5):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode()
    finally:
        c.close()


def scrape(port):
    st, h, text = admin_get(port, "/metrics")
    assert st == 200, (st, text)
    assert h["content-type"].startswith("text/plain"), h
    assert "version=0.0.4" in h["content-type"], h
    fams, samples = parse_prometheus(text)
    return fams, samples


def val(samples, name, **labels):
    key = (name, tuple(sorted(labels.items())))
    for (n, ls), v in samples.items():
        if n == name and tuple(sorted(ls)) == key[1]:
            return v
    raise AssertionError("no sample %s%r" % (name, labels))


def test_admin_endpoints(make_daemon, upstream):
    admin = free_port()
    d = make_daemon(upstream, glob={"admin_listen": "127.0.0.1:%d" % admin})
    assert wait_until(lambda: _up(admin), 3)
    st, _, body = admin_get(admin, "/healthz")
    assert (st, body) == (200, "ok\n")
    st, _, _ = admin_get(admin, "/healthz?x=1")
    assert st == 200
    st, _, _ = admin_get(admin, "/nope")
    assert st == 404
    st, _, _ = admin_get(admin, "/metricsx")
    assert st == 404
    st, _, _ = admin_get(admin, "/metrics", method="POST")
    assert st == 405
    fams, _ = scrape(admin)
    expected = {
        "tlslift_requests_total": "counter", "tlslift_bytes_total": "counter",
        "tlslift_client_connections": "gauge", "tlslift_client_connections_total": "counter",
        "tlslift_upstream_connections": "gauge", "tlslift_pool_total": "counter",
        "tlslift_upstream_handshakes_total": "counter", "tlslift_tls_connections_total": "counter",
        "tlslift_upstream_seconds": "histogram", "tlslift_request_seconds": "histogram",
        "tlslift_errors_total": "counter", "tlslift_certificate_expiry_days": "gauge",
        "tlslift_config_reloads_total": "counter",
        "tlslift_config_last_reload_successful": "gauge",
    }
    for name, typ in expected.items():
        assert name in fams, "missing %s" % name
        assert fams[name]["type"] == typ, (name, fams[name]["type"])
    # The admin port is not a proxy port.
    st, _, _ = admin_get(admin, "/echo")
    assert st == 404
    assert d.alive()


def _up(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def test_metrics_move_with_traffic(make_daemon, upstream):
    admin = free_port()
    d = make_daemon(upstream, glob={"admin_listen": "127.0.0.1:%d" % admin})
    assert wait_until(lambda: _up(admin), 3)
    _, m0 = scrape(admin)
    up0 = upstream.stats()

    client_conns = 0
    # 5 requests on one keep-alive connection (upstream pool reuse).
    c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=5)
    client_conns += 1
    for i in range(5):
        c.request("GET", "/echo/ka%d" % i)
        r = c.getresponse()
        r.read()
        assert r.status == 200
    c.close()
    # 3 POSTs with a body, each on a new connection.
    body = b"x" * 1000
    for i in range(3):
        st, _, got = d.request("POST", "/mirror", body=body)
        client_conns += 1
        assert st == 200 and got == body
    # Upstream 404 and 503.
    for code in (404, 503):
        st, _, _ = d.request("GET", "/status/%d" % code)
        client_conns += 1
        assert st == code
    # One tlslift answers itself (duplicate Host: 400).
    with RawConn(d.port) as rc:
        rc.send(build_request("GET", "/dup", headers=[("Host", "a"), ("Host", "b")]))
        assert rc.read_response().status == 400
    client_conns += 1
    forwarded, total = 10, 11

    lines = d.wait_access(total, timeout=3)
    assert len(lines) == total, lines
    assert wait_until(lambda: val(scrape(admin)[1], "tlslift_client_connections") == 0, 3)
    fams, m1 = scrape(admin)
    up1 = upstream.stats()

    def delta(name, **labels):
        return val(m1, name, **labels) - val(m0, name, **labels)

    # Counters never go down.
    for key, v in m0.items():
        fam = family_of(key[0], {n: f["type"] for n, f in fams.items()})
        if fams.get(fam, {}).get("type") == "counter":
            assert m1[key] >= v, key

    route = "test"
    assert delta("tlslift_requests_total", route=route, code="2xx") == 8
    assert delta("tlslift_requests_total", route=route, code="4xx") == 2
    assert delta("tlslift_requests_total", route=route, code="5xx") == 1
    assert delta("tlslift_requests_total", route=route, code="1xx") == 0
    assert delta("tlslift_requests_total", route=route, code="3xx") == 0

    bin_ = sum(int(l["in"]) for l in lines)
    bout = sum(int(l["out"]) for l in lines)
    assert bin_ >= 3000 and bout >= 3000, (bin_, bout)
    assert delta("tlslift_bytes_total", route=route, direction="in") == bin_
    assert delta("tlslift_bytes_total", route=route, direction="out") == bout

    hits = delta("tlslift_pool_total", result="hit")
    misses = delta("tlslift_pool_total", result="miss")
    new_up = up1["connections"] - up0["connections"]
    assert hits + misses == forwarded, (hits, misses)
    assert misses == new_up, (misses, new_up)
    assert hits >= 4, "keep-alive reuse did not show as pool hits: %s" % hits
    reused = sum(1 for l in lines if l.get("reused") == "1")
    assert hits == reused, (hits, reused)

    hs = delta("tlslift_upstream_handshakes_total", kind="full") + \
        delta("tlslift_upstream_handshakes_total", kind="resumption_offered")
    assert hs == up1["handshakes"] - up0["handshakes"] == new_up
    assert delta("tlslift_tls_connections_total", side="upstream", version="1.3") == hs
    assert delta("tlslift_tls_connections_total", side="upstream", version="1.2") == 0

    assert delta("tlslift_tls_connections_total", side="client", version="plain") == client_conns
    assert delta("tlslift_client_connections_total", result="accepted") == client_conns
    assert delta("tlslift_client_connections_total", result="rejected") == 0

    assert delta("tlslift_request_seconds_count", route=route) == total
    assert delta("tlslift_upstream_seconds_count", route=route) == forwarded
    assert delta("tlslift_request_seconds_sum", route=route) > 0
    assert delta("tlslift_request_seconds_bucket", route=route, le="+Inf") == total

    errs = {ls: v for (n, ls), v in m1.items() if n == "tlslift_errors_total"}
    errs0 = {ls: v for (n, ls), v in m0.items() if n == "tlslift_errors_total"}
    assert sum(errs.values()) - sum(errs0.values()) == 1, errs

    # Pooled upstream connections are open; no client connection is.
    assert 1 <= val(m1, "tlslift_upstream_connections") <= misses
    assert val(m1, "tlslift_client_connections") == 0
    assert val(m1, "tlslift_config_last_reload_successful") == 1
    assert delta("tlslift_config_reloads_total", result="ok") == 0
    assert d.alive()


def test_healthz_503_while_draining(make_daemon, upstream):
    admin = free_port()
    d = make_daemon(upstream, glob={"admin_listen": "127.0.0.1:%d" % admin,
                                    "shutdown_timeout": "5s"})
    d.expect_exit = True  # stopped by the test, which checks the exit code
    assert wait_until(lambda: _up(admin), 3)
    slow = RawConn(d.port, timeout=10)
    slow.send(build_request("GET", "/delay/1500"))
    assert wait_until(lambda: any(h["path"] == "/delay/1500" for h in list(upstream.heads)), 3)
    os.kill(d.proc.pid, signal.SIGTERM)
    assert d.wait_log("SIGTERM: stopping", timeout=2)
    # The admin endpoint may already be closed, or answer 503: never 200.
    try:
        st, _, _ = admin_get(admin, "/healthz", timeout=2)
    except OSError:
        st = None
    assert st in (None, 503), st
    assert slow.read_response(timeout=5).status == 200
    slow.close()
    assert d.proc.wait(5) == 0
