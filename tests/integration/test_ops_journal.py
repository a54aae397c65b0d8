"""Journal priorities: when JOURNAL_STREAM names tlslift's stderr (dev:ino),
every line starts with <N>: <3> error, <4> warn, <6> info and access, <7> debug.
When it names another file, there is no prefix."""

import os
import re
import signal

from harness import RawConn, build_request, wait_until

PRIO = {"error": "3", "warn": "4", "info": "6", "debug": "7", "access": "6"}
LINE_RE = re.compile(r"^<([0-7])>(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (error|warn|info|debug|access) ")


def start_with_journal(make_daemon, upstream, monkeypatch, match=True):
    d = make_daemon(upstream, glob={"log_level": "debug"}, start=False)
    d.stderr_path.touch()
    st = os.stat(d.stderr_path)
    ino = st.st_ino if match else st.st_ino + 1
    monkeypatch.setenv("JOURNAL_STREAM", "%d:%d" % (st.st_dev, ino))
    d.start()
    monkeypatch.delenv("JOURNAL_STREAM")
    assert os.stat(d.stderr_path).st_ino == st.st_ino
    return d


def make_traffic(d):
    st, _, _ = d.request("GET", "/echo/j")
    assert st == 200
    with RawConn(d.port) as c:  # a 400 tlslift answers itself
        c.send(build_request("GET", "/x", headers=[("Host", "a"), ("Host", "b")]))
        assert c.read_response().status == 400
    # A failed reload: an error line.
    good = d.config_path.read_text()
    d.config_path.write_text(good + "\nbogus = 1\n")
    os.kill(d.proc.pid, signal.SIGHUP)
    assert d.wait_log(r"reload failed", timeout=3), d.stderr()
    d.config_path.write_text(good)
    assert wait_until(lambda: d.stderr().count(" access ") >= 2, 3), d.stderr()


def test_journal_priorities(make_daemon, upstream, monkeypatch):
    d = start_with_journal(make_daemon, upstream, monkeypatch)
    make_traffic(d)
    lines = d.stderr().splitlines()
    assert lines
    seen = set()
    for line in lines:
        m = LINE_RE.match(line)
        assert m, "line without a <N> priority prefix: %r" % line
        prio, _, level = m.groups()
        assert prio == PRIO[level], "%s line with <%s>: %r" % (level, prio, line)
        seen.add(level)
    assert {"error", "warn", "info", "debug", "access"} <= seen, seen


def test_no_prefix_when_stderr_is_not_the_journal(make_daemon, upstream, monkeypatch):
    d = start_with_journal(make_daemon, upstream, monkeypatch, match=False)
    make_traffic(d)
    lines = d.stderr().splitlines()
    assert lines
    for line in lines:
        assert not line.startswith("<"), line
        assert re.match(r"^\d{4}-\d\d-\d\dT", line), line
