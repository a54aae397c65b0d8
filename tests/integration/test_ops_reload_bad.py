"""A bad configuration on SIGHUP is rejected and the old one keeps running.

The log names FILE:LINE and says "reload failed"; /metrics shows
tlslift_config_last_reload_successful 0 and the failed-reload counter moves;
a later good reload sets it back to 1 and takes effect.
"""

import json
import os
import re
import signal
import socket
import urllib.error
import urllib.request

from harness import free_port, wait_until


def admin_get(port, path, timeout=5):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metric(text, name, labels=""):
    """The value of one sample, e.g. metric(t, 'x_total', '{result="ok"}'); None if absent."""
    rx = re.compile(r"^%s%s (\S+)$" % (re.escape(name), re.escape(labels)), re.M)
    m = rx.findall(text)
    assert len(m) <= 1, "sample %s%s appears %d times" % (name, labels, len(m))
    return float(m[0]) if m else None


def reload_metrics(admin):
    st, text = admin_get(admin, "/metrics")
    assert st == 200, (st, text)
    return (metric(text, "tlslift_config_last_reload_successful"),
            metric(text, "tlslift_config_reloads_total", '{result="ok"}'),
            metric(text, "tlslift_config_reloads_total", '{result="failed"}'))


def served_by(d, up, path):
    before = len(up.requests)
    st, _, body = d.request("GET", path)
    assert st == 200, body
    rec = json.loads(body)
    return rec["path"] == path and any(r["path"] == path for r in list(up.requests)[before:])


def test_bad_reload_keeps_old_config(make_daemon, make_upstream):
    old = make_upstream()
    new = make_upstream()
    admin = free_port()
    d = make_daemon(old, glob={"admin_listen": "127.0.0.1:%d" % admin})
    good_text = d.config_text
    assert served_by(d, old, "/echo/start")
    assert reload_metrics(admin) == (1, 0, 0)

    # The new upstream, and an unknown key on a known line.
    lines = good_text.replace(old.url, new.url).splitlines()
    idx = next(i for i, l in enumerate(lines) if l.startswith("upstream ="))
    lines.insert(idx + 1, "no_such_key = 1")
    d.config_path.write_text("\n".join(lines) + "\n")
    bad_line = idx + 2  # 1-based

    os.kill(d.proc.pid, signal.SIGHUP)
    m = d.wait_log(r"^.*reload failed.*$", timeout=3)
    assert m, "no 'reload failed' line"
    line = m.group(0)
    assert "%s:%d:" % (d.config_path, bad_line) in line, "the line does not name FILE:LINE: %r" % line
    assert "no_such_key" in line, line
    assert d.alive()

    # Still the old upstream, and the metrics say so.
    assert served_by(d, old, "/echo/after-bad")
    assert not any(r["path"] == "/echo/after-bad" for r in list(new.requests))
    assert reload_metrics(admin) == (0, 0, 1)
    st, body = admin_get(admin, "/healthz")
    assert st == 200, body

    # A second bad one (a duplicate key) counts again.
    d.config_path.write_text(good_text.replace("run_as_root = yes",
                                               "run_as_root = yes\nrun_as_root = yes"))
    os.kill(d.proc.pid, signal.SIGHUP)
    assert wait_until(lambda: len(re.findall(r"reload failed", d.stderr())) >= 2, 3), d.stderr()
    assert reload_metrics(admin) == (0, 0, 2)
    assert served_by(d, old, "/echo/after-bad2")

    # A good reload: back to 1, and it takes effect.
    d.config_path.write_text(good_text.replace(old.url, new.url))
    os.kill(d.proc.pid, signal.SIGHUP)
    assert d.wait_log(r"configuration reloaded from", timeout=3), d.stderr()
    assert wait_until(lambda: reload_metrics(admin) == (1, 1, 2), 2), reload_metrics(admin)
    assert served_by(d, new, "/echo/after-good")
    assert not any(r["path"] == "/echo/after-good" for r in list(old.requests))
    assert d.alive()


def test_reload_failing_to_bind_keeps_old_listener(make_daemon, make_upstream):
    """A valid file whose new listen address cannot be bound: the reload fails,
    the old listener keeps serving."""
    old = make_upstream()
    d = make_daemon(old)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        port2 = taken.getsockname()[1]
        d.config_path.write_text(d.config_text.replace("127.0.0.1:%d" % d.port,
                                                       "127.0.0.1:%d" % port2))
        os.kill(d.proc.pid, signal.SIGHUP)
        m = d.wait_log(r"^.*reload failed.*$", timeout=3)
        assert m, "no 'reload failed' line"
        assert str(port2) in m.group(0), m.group(0)
        assert served_by(d, old, "/echo/still")
    finally:
        taken.close()
