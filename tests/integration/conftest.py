"""Fixtures for tlslift's integration tests (helpers live in harness.py).

- pki (session): test CA + leaves, made with the openssl CLI in a tmp dir.
- make_upstream (function): factory of Upstream HTTPS servers, stopped at teardown.
- upstream: one default upstream (localhost cert, TLS 1.3).
- make_daemon (function): factory that writes an INI file, starts tlslift,
  waits for its port, kills it by PID at teardown; its stderr is attached to
  the report of a failing test.
- daemon: tlslift with one route "test" to `upstream`.
- blackhole: a TCP listener that never speaks.
- tarpit: a listener whose TCP connects hang.
"""

import pytest

from harness import Blackhole, Daemon, Pki, Tarpit, Upstream, free_port, render_ini, tlslift_bin
from harness import MkcertPki


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for d in getattr(item, "_tlslift_daemons", []):
            rep.sections.append(("tlslift %s (port %s)" % (d.name, d.port), d.stderr_tail()))
        for u in getattr(item, "_tlslift_upstreams", []):
            rep.sections.append(("upstream port %d" % u.port, repr(u.describe())))


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def make_upstream(pki, request):
    made = []
    request.node._tlslift_upstreams = made

    def make(cert="localhost", **kw):
        u = Upstream(pki.cert(cert), **kw)
        made.append(u)
        return u

    yield make
    for u in made:
        u.stop()


@pytest.fixture
def upstream(make_upstream):
    return make_upstream()


@pytest.fixture
def blackhole():
    b = Blackhole()
    yield b
    b.stop()


@pytest.fixture
def tarpit():
    t = Tarpit()
    yield t
    t.stop()


@pytest.fixture
def tlslift_binary():
    b = tlslift_bin()
    if not b.exists():
        pytest.fail("tlslift binary not found at %s: build it (meson setup build && ninja -C build) "
                    "or set TLSLIFT_BIN" % b)
    return b


def route_config(pki, upstream_url, port, **kw):
    r = {
        "listen": "127.0.0.1:%d" % port,
        "upstream": upstream_url,
        "upstream_ca_file": str(pki.ca),
    }
    r.update(kw)
    return r


@pytest.fixture
def make_daemon(pki, tmp_path, request, tlslift_binary):
    """make_daemon(upstream, route={...}, glob={...}, routes=None, start=True)
    or make_daemon(args=[...], port=PORT) for a daemon started without a file.

    route: extra keys for the route "test" (a value None drops a default key).
    glob:  keys for [tlslift].
    routes: a full list of (name, dict) to use instead of the one route.
    """
    started = []
    request.node._tlslift_daemons = started

    def make(upstream=None, route=None, glob=None, routes=None, start=True, name=None,
             upstream_url=None, args=None, port=None):
        name = name or "tlslift%d" % len(started)
        if args is not None:
            # Command-line mode (quick mode): no config file.
            d = Daemon(tmp_path, args, port=port, name=name, config_text="(args) %r" % (args,))
            started.append(d)
            if start:
                d.start()
            return d
        # Tests run as root: say so, as an operator would have to.
        g = {"log_level": "info", "ca_file": str(pki.ca), "run_as_root": "yes"}
        g.update(glob or {})
        if routes is None:
            port = free_port()
            url = upstream_url or upstream.url
            routes = [("test", route_config(pki, url, port, **(route or {})))]
        else:
            port = int(routes[0][1]["listen"].rsplit(":", 1)[1])
        sections = [("tlslift", g)] + [("route %s" % n, r) for n, r in routes]
        text = render_ini(sections)
        path = tmp_path / ("%s.ini" % name)
        path.write_text(text)
        d = Daemon(tmp_path, ["-c", path], port=port, name=name, config_text=text, config_path=path)
        started.append(d)
        if start:
            d.start()
        return d

    yield make
    # Every daemon must still be running at teardown (unless the test said it
    # would exit) and must exit 0 on SIGTERM: a crash, or a sanitizer report
    # (ASAN_OPTIONS/UBSAN_OPTIONS exitcode) at exit, fails the test here.
    problems = []
    for d in started:
        was_alive = d.alive()
        rc = d.stop(timeout=15)
        if d.expect_exit or rc is None:
            continue
        if not was_alive:
            problems.append("%s exited on its own with %s before teardown" % (d.name, rc))
        elif rc != 0:
            problems.append("%s exited with %s on SIGTERM (0 expected)" % (d.name, rc))
    if problems:
        pytest.fail("; ".join(problems) + "\n" + "\n".join(d.stderr_tail(60) for d in started),
                    pytrace=False)


@pytest.fixture
def daemon(make_daemon, upstream):
    return make_daemon(upstream)


# --- TLS from clients (old-TLS listeners) ---

# The names of the leaf most old-TLS tests serve: the service the legacy app calls, and
# the names a local client may use instead of a hosts-file entry.
TLS_LEAF_NAMES = ("api.raygun.com", "localhost", "127.0.0.1")


@pytest.fixture(scope="session")
def mkcert_pki(tmp_path_factory):
    """A local CA from `tlslift mkcert --ca DIR`; leaf(NAME, *MORE) issues leaves on demand."""
    return MkcertPki(tmp_path_factory.mktemp("mkcert"))


@pytest.fixture
def make_tls_daemon(make_daemon, mkcert_pki):
    """make_tls_daemon(upstream, glob=None, **route keys): tlslift with one route "test"
    whose listener serves TLS with the mkcert leaf for api.raygun.com (also localhost and
    127.0.0.1), tls_min_version = 1.0 unless given, log_level = debug (so the client's TLS
    version shows in the log)."""

    def make(upstream, glob=None, **route):
        crt, key = mkcert_pki.leaf(*TLS_LEAF_NAMES)
        r = {"tls_cert": str(crt), "tls_key": str(key), "tls_min_version": "1.0"}
        r.update(route)
        g = {"log_level": "debug"}
        g.update(glob or {})
        return make_daemon(upstream, route=r, glob=g)

    return make

