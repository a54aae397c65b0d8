"""`tlslift -t -c FILE`: exit 0 and "configuration ok", or exit 1 and FILE:LINE: reason."""

import re
import subprocess

import pytest

from harness import tlslift_bin


@pytest.fixture
def check(tmp_path, pki, tlslift_binary):
    """check(text) -> (returncode, output, path). Lines ending in '  <<' mark the expected line."""

    def run_check(text, name="t.ini"):
        lines = text.strip("\n").split("\n")
        marked = [i + 1 for i, l in enumerate(lines) if l.endswith("<<")]
        lines = [l[:-2].rstrip() if l.endswith("<<") else l for l in lines]
        path = tmp_path / name
        path.write_text("\n".join(lines).replace("@CA@", str(pki.ca)) + "\n")
        r = subprocess.run([str(tlslift_bin()), "-t", "-c", str(path)], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=20, text=True)
        return r.returncode, r.stdout + r.stderr, path, (marked[0] if marked else None)

    return run_check


GOOD = """
; a comment
# another comment
[tlslift]
log_level = warn
ca_file = @CA@
max_connections = 64
client_header_timeout = 500ms

[route raygun]
listen = 127.0.0.1:18080
upstream = https://localhost:8443
upstream_ca_file = @CA@
upstream_min_version = 1.3
upstream_sni = api.example
host_header = preserve
idle_timeout = 2m
upstream_response_timeout = 30
max_headers = 50

[route second]
listen = [::1]:18081
upstream = https://localhost
"""


def test_good_config(check):
    rc, out, path, _ = check(GOOD)
    assert rc == 0, out
    assert "configuration ok" in out


def test_minimal_config(check):
    rc, out, _, _ = check("""
[tlslift]
ca_file = @CA@
[route a]
listen = 127.0.0.1:18080
upstream = https://localhost:8443
""")
    assert rc == 0, out
    assert "configuration ok" in out


def _assert_error(rc, out, path, line, *words):
    assert rc == 1, "exit %d, output: %s" % (rc, out)
    assert "configuration ok" not in out
    if line is not None:
        assert "%s:%d:" % (path, line) in out, out
    else:
        assert re.search(re.escape(str(path)) + r":\d+: ", out), out
    low = out.lower()
    for w in words:
        assert w.lower() in low, "%r not in %r" % (w, out)


BASE = """
[tlslift]
ca_file = @CA@
[route a]
listen = 127.0.0.1:18080
upstream = https://localhost:8443
"""

ERRORS = {
    "unknown_key_route": (BASE + "colour = blue  <<\n", ["colour"]),
    "unknown_key_global": ("""
[tlslift]
ca_file = @CA@
frobnicate = 1  <<
[route a]
listen = 127.0.0.1:18080
upstream = https://localhost:8443
""", ["frobnicate"]),
    "unknown_section": (BASE + "[proxy]  <<\nlisten = 127.0.0.1:1\n", ["proxy"]),
    "route_without_name": (BASE + "[route]  <<\nlisten = 127.0.0.1:18081\nupstream = https://localhost\n", []),
    "duplicate_key": ("""
[tlslift]
ca_file = @CA@
[route a]
listen = 127.0.0.1:18080
upstream = https://localhost:8443
listen = 127.0.0.1:18081  <<
""", ["listen"]),
    "bad_number": (BASE + "max_headers = lots  <<\n", ["max_headers"]),
    "negative_number": (BASE + "max_request_line = -5  <<\n", ["max_request_line"]),
    "bad_duration": (BASE + "idle_timeout = 5 parsecs  <<\n", ["idle_timeout"]),
    "bad_duration_unit": (BASE + "client_header_timeout = 5h  <<\n", ["client_header_timeout"]),
    "bad_log_level": ("""
[tlslift]
log_level = loud  <<
ca_file = @CA@
[route a]
listen = 127.0.0.1:18080
upstream = https://localhost:8443
""", ["log_level"]),
    "bad_max_connections": ("""
[tlslift]
ca_file = @CA@
max_connections = many  <<
[route a]
listen = 127.0.0.1:18080
upstream = https://localhost:8443
""", ["max_connections"]),
    "bad_host_header": (BASE + "host_header = rewrite-please  <<\n", ["host_header"]),
    "bad_listen": ("""
[tlslift]
ca_file = @CA@
[route a]
listen = localhost-ish  <<
upstream = https://localhost:8443
""", ["listen"]),
    "bad_listen_port": ("""
[tlslift]
ca_file = @CA@
[route a]
listen = 127.0.0.1:99999  <<
upstream = https://localhost:8443
""", ["listen"]),
    "http_upstream": ("""
[tlslift]
ca_file = @CA@
[route a]
listen = 127.0.0.1:18080
upstream = http://localhost:8443  <<
""", ["https"]),
    "upstream_with_path": ("""
[tlslift]
ca_file = @CA@
[route a]
listen = 127.0.0.1:18080
upstream = https://localhost:8443/api  <<
""", ["upstream"]),
    "min_version_11": (BASE + "upstream_min_version = 1.1  <<\n", ["upstream_min_version"]),
    "min_version_10": (BASE + "upstream_min_version = 1.0  <<\n", ["upstream_min_version"]),
    "bad_allow_remote": (BASE + "allow_remote = perhaps  <<\n", ["allow_remote"]),
    "key_outside_section": ("""
log_level = info  <<
[tlslift]
ca_file = @CA@
[route a]
listen = 127.0.0.1:18080
upstream = https://localhost:8443
""", []),
    "not_ini": (BASE + "this line is not ini  <<\n", []),
}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_config_error_with_line(check, name):
    text, words = ERRORS[name]
    rc, out, path, line = check(text)
    assert line is not None
    _assert_error(rc, out, path, line, *words)


NO_LINE = {
    "missing_ca_file": (BASE + "upstream_ca_file = /nonexistent/ca.pem\n", ["/nonexistent/ca.pem"]),
    "missing_listen": ("""
[tlslift]
ca_file = @CA@
[route a]
upstream = https://localhost:8443
""", ["listen", "a"]),
    "missing_upstream": ("""
[tlslift]
ca_file = @CA@
[route a]
listen = 127.0.0.1:18080
""", ["upstream", "a"]),
    "no_route": ("""
[tlslift]
ca_file = @CA@
""", ["route"]),
    "remote_listen_not_allowed": ("""
[tlslift]
ca_file = @CA@
[route a]
listen = 0.0.0.0:18080
upstream = https://localhost:8443
""", ["allow_remote"]),
    "same_listen_twice": ("""
[tlslift]
ca_file = @CA@
[route a]
listen = 127.0.0.1:18080
upstream = https://localhost:8443
[route b]
listen = 127.0.0.1:18080
upstream = https://localhost:8444
""", ["listen"]),
    "duplicate_route_name": ("""
[tlslift]
ca_file = @CA@
[route a]
listen = 127.0.0.1:18080
upstream = https://localhost:8443
[route a]
listen = 127.0.0.1:18081
upstream = https://localhost:8444
""", []),
}


@pytest.mark.parametrize("name", sorted(NO_LINE))
def test_config_error_cross_field(check, name):
    """Errors found after parsing still name FILE:LINE (the route) and say what is wrong."""
    text, words = NO_LINE[name]
    rc, out, path, _ = check(text)
    _assert_error(rc, out, path, None, *words)


def test_allow_remote_yes(check):
    rc, out, _, _ = check("""
[tlslift]
ca_file = @CA@
[route a]
listen = 0.0.0.0:18080
allow_remote = yes
upstream = https://localhost:8443
""")
    assert rc == 0, out


def test_durations_accept_units(check):
    rc, out, _, _ = check(BASE + "idle_timeout = 1500ms\nclient_body_timeout = 2m\n"
                          "upstream_connect_timeout = 3s\nupstream_tls_timeout = 4\n")
    assert rc == 0, out


def test_bad_ca_file_content(check, tmp_path):
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    rc, out, path, _ = check(BASE.replace("@CA@", str(junk)))
    assert rc == 1, out
    assert "configuration ok" not in out
    assert str(junk) in out or re.search(re.escape(str(path)) + r":\d+:", out), out


def test_check_does_not_bind(check, tmp_path):
    """-t checks, it does not start: a config for a port in use is still ok."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        rc, out, _, _ = check(BASE.replace("127.0.0.1:18080", "127.0.0.1:%d" % port))
        assert rc == 0, out
    finally:
        s.close()


def test_missing_file(tmp_path, tlslift_binary):
    r = subprocess.run([str(tlslift_bin()), "-t", "-c", str(tmp_path / "nope.ini")],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20, text=True)
    assert r.returncode == 1
    assert "nope.ini" in r.stdout + r.stderr
