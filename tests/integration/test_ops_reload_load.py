"""SIGHUP under load: a client loop runs while a reload swaps the route's upstream.

- no request fails (keep-alive connections and new connections alike);
- no connection is refused: the listening socket stays open (same inode);
- a request in flight at the reload finishes on the old upstream;
- after the reload, new requests (also on keep-alive connections opened
  before it) reach the new upstream, and the old upstream gets nothing more.
"""

import http.client
import json
import os
import signal
import threading
import time

from harness import RawConn, build_request, wait_until

LOAD_SECONDS = 2.6      # the whole client loop
RELOAD_AT = 1.0         # seconds into it
MAX_PER_THREAD = 3000   # a bound on the count as well as on the time


def listen_inodes(port):
    """Inodes of the LISTEN sockets on 127.0.0.1:port (from /proc/net/tcp)."""
    out = []
    want = "0100007F:%04X" % port
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            cols = line.split()
            if cols[1] == want and cols[3] == "0A":
                out.append(int(cols[9]))
    return out


def host_of(body):
    """The Host header the upstream received (tlslift rewrites it to the upstream's)."""
    rec = json.loads(body)
    hosts = [v for k, v in rec["headers"] if k.lower() == "host"]
    assert len(hosts) == 1, rec
    return hosts[0]


class Load:
    def __init__(self, port, deadline):
        self.port = port
        self.deadline = deadline
        self.lock = threading.Lock()
        self.results = []   # (t_start, t_end, upstream_port, kind)
        self.failures = []  # (t, kind, repr)
        self.refused = 0

    def _record(self, t0, body, kind):
        rec = json.loads(body)
        up = host_of(body)
        with self.lock:
            self.results.append((t0, time.monotonic(), up, kind, rec["path"]))

    def _fail(self, kind, e):
        with self.lock:
            self.failures.append((time.monotonic(), kind, repr(e)))
            if isinstance(e, ConnectionRefusedError):
                self.refused += 1

    def keepalive(self, tid):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            for i in range(MAX_PER_THREAD):
                if time.monotonic() >= self.deadline:
                    break
                t0 = time.monotonic()
                try:
                    conn.request("GET", "/echo/ka%d-%d" % (tid, i))
                    r = conn.getresponse()
                    body = r.read()
                    if r.status != 200:
                        raise AssertionError("status %d: %r" % (r.status, body[:200]))
                    if (r.getheader("Connection") or "").lower() == "close":
                        raise AssertionError("keep-alive connection closed by tlslift")
                    self._record(t0, body, "keepalive")
                except Exception as e:  # noqa: BLE001 - every failure is counted
                    self._fail("keepalive", e)
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        finally:
            conn.close()

    def fresh(self, tid):
        for i in range(MAX_PER_THREAD):
            if time.monotonic() >= self.deadline:
                break
            t0 = time.monotonic()
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                conn.request("GET", "/echo/new%d-%d" % (tid, i), headers={"Connection": "close"})
                r = conn.getresponse()
                body = r.read()
                if r.status != 200:
                    raise AssertionError("status %d: %r" % (r.status, body[:200]))
                self._record(t0, body, "new")
            except Exception as e:  # noqa: BLE001
                self._fail("new", e)
            finally:
                conn.close()


def make_pair(make_upstream):
    old, new = make_upstream(), make_upstream()
    for u in (old, new):
        u.host_port = "localhost:%d" % u.port
    return old, new


def test_reload_under_load_swaps_upstream(make_daemon, make_upstream):
    old, new = make_pair(make_upstream)
    d = make_daemon(old)
    port = d.port
    inodes_before = listen_inodes(port)
    assert len(inodes_before) == 1, inodes_before

    # The same file with only the upstream changed.
    text = d.config_text.replace(old.url, new.url)
    assert text != d.config_text and new.url in text

    start = time.monotonic()
    load = Load(port, start + LOAD_SECONDS)
    threads = [threading.Thread(target=load.keepalive, args=(i,), daemon=True) for i in range(2)]
    threads += [threading.Thread(target=load.fresh, args=(i,), daemon=True) for i in range(2)]
    for t in threads:
        t.start()

    time.sleep(RELOAD_AT)
    # A slow request in flight across the reload: it must finish on the old upstream.
    slow = RawConn(port, timeout=10)
    slow.send(build_request("GET", "/delay/800"))
    assert wait_until(lambda: any(h["path"] == "/delay/800" for h in list(old.heads)), 3), \
        "the slow request did not reach the old upstream"

    d.config_path.write_text(text)
    t_hup = time.monotonic()
    os.kill(d.proc.pid, signal.SIGHUP)
    assert d.wait_log(r"configuration reloaded from", timeout=3), "no 'configuration reloaded' line"
    t_done = time.monotonic()
    # Requests the old upstream had already been handed may still be arriving
    # there: let them land, then its count must not move again.
    time.sleep(0.3)
    old_at_reload = old.stats()["requests"]
    new_at_reload = new.stats()["requests"]

    r = slow.read_response(timeout=5)
    slow.close()
    assert r.status == 200, r
    assert host_of(r.body) == old.host_port, "the in-flight request did not finish on the old upstream"

    for t in threads:
        t.join(LOAD_SECONDS + 15)
    assert not any(t.is_alive() for t in threads), "client threads did not finish"
    end = time.monotonic()

    assert d.alive(), d.stderr()
    assert load.refused == 0, "connections refused during the reload: %r" % load.failures[:5]
    assert not load.failures, "%d failed requests, first: %r" % (len(load.failures), load.failures[:5])

    before = [x for x in load.results if x[1] < t_hup]
    after = [x for x in load.results if x[0] > t_done]
    assert len(before) >= 20, "too little load before the reload: %d" % len(before)
    assert len(after) >= 20, "too little load after the reload: %d" % len(after)
    old_paths = {r["path"] for r in list(old.requests)}
    new_paths = {r["path"] for r in list(new.requests)}
    assert all(x[4] in old_paths for x in before), "requests before the reload went elsewhere"
    # Whenever it happened, a request carries the Host of the upstream that got it.
    mixed = [x for x in load.results
             if (x[4] in new_paths and x[2] != new.host_port)
             or (x[4] in old_paths and x[2] != old.host_port)]
    assert not mixed, ("%d requests reached one upstream with the other's Host header (new %s, "
                       "old %s): %r" % (len(mixed), new.host_port, old.host_port, mixed[:3]))
    assert {x[2] for x in before} == {old.host_port}, "Host before the reload was not the old upstream's"
    wrong = [x for x in after if x[4] not in new_paths]
    assert not wrong, "%d requests started after the reload did not reach the new upstream (%r)" % (
        len(wrong), sorted({x[3] for x in wrong}))
    wrong = [x for x in after if x[2] != new.host_port]
    assert not wrong, ("%d requests started after the reload reached the new upstream with a Host "
                       "header other than %s: %r" % (len(wrong), new.host_port, wrong[:3]))
    # Keep-alive connections opened before the reload switched too.
    assert {x[3] for x in after} == {"keepalive", "new"}

    # The old upstream's count stopped growing; the new one's grew.
    assert old.stats()["requests"] == old_at_reload, (old_at_reload, old.stats()["requests"])
    assert new.stats()["requests"] >= len(after)
    assert new.stats()["requests"] >= new_at_reload + 20, "the new upstream's count did not grow"
    assert old.stats()["requests"] + new.stats()["requests"] == len(load.results) + 1

    # The listening socket is the very same one.
    assert listen_inodes(port) == inodes_before
    assert d.wait_log(r"^\S+ error ", timeout=0) is None, "error lines in the log"
    d.assert_serving(new)
    assert end - start < LOAD_SECONDS + 15


def test_keepalive_connection_follows_reload(make_daemon, make_upstream):
    """Deterministic form of the above: one keep-alive connection, one request
    before the reload and one after, on the same connection."""
    old, new = make_pair(make_upstream)
    d = make_daemon(old)
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=5)
    try:
        conn.request("GET", "/echo/one")
        r = conn.getresponse()
        assert r.status == 200 and host_of(r.read()) == old.host_port
        sock_before = conn.sock

        d.config_path.write_text(d.config_text.replace(old.url, new.url))
        os.kill(d.proc.pid, signal.SIGHUP)
        assert d.wait_log(r"configuration reloaded from", timeout=3)

        for path in ("/echo/two", "/echo/three"):
            conn.request("GET", path)
            r = conn.getresponse()
            body = r.read()
            assert conn.sock is sock_before, "the keep-alive connection was not kept"
            assert r.status == 200, body
            assert [x["path"] for x in list(old.requests)] == ["/echo/one"], \
                "a request after the reload reached the old upstream"
            assert path in [x["path"] for x in list(new.requests)], path
            assert host_of(body) == new.host_port, (
                "%s after the reload: the new upstream got Host %r, expected %r (old upstream: %r)"
                % (path, host_of(body), new.host_port, old.host_port))
    finally:
        conn.close()
