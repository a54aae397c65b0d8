"""Socket activation: listening sockets passed as fd 3, 4, ... with LISTEN_FDS,
LISTEN_PID and LISTEN_FDNAMES, matched to routes by name or by address.

The route's own `listen` is the very address of the passed socket, which the
test keeps bound: had tlslift bound a socket of its own it would have failed
with EADDRINUSE, so being served proves it used the passed one (and the
socket's inode is checked too).
"""

import fcntl
import json
import os
import socket
import subprocess

import pytest

from harness import http_request, render_ini, tlslift_bin, wait_until


def listening_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    return s


def write_config(tmp_path, pki, upstream, routes):
    g = {"log_level": "info", "ca_file": str(pki.ca), "run_as_root": "yes"}
    sections = [("tlslift", g)]
    for name, port in routes:
        sections.append(("route %s" % name, {"listen": "127.0.0.1:%d" % port,
                                             "upstream": upstream.url,
                                             "upstream_ca_file": str(pki.ca)}))
    path = tmp_path / "activated.ini"
    path.write_text(render_ini(sections))
    return path


class Activated:
    """tlslift started the way systemd starts it: sockets at fd 3.., LISTEN_PID = its pid."""

    def __init__(self, tmp_path, cfg, socks, names=None, pid="$$"):
        self.stderr_path = tmp_path / "activated.stderr"
        env = dict(os.environ, LISTEN_FDS=str(len(socks)))
        env.pop("NOTIFY_SOCKET", None)
        env.pop("LISTEN_FDNAMES", None)
        if names is not None:
            env["LISTEN_FDNAMES"] = names
        fds = [s.fileno() for s in socks]

        def place_fds():
            # Move the sockets to 3, 4, ... (dup2 leaves them inheritable);
            # through copies above 100, so no source is overwritten first.
            tmp = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in fds]
            for i, fd in enumerate(tmp):
                os.dup2(fd, 3 + i)
                os.close(fd)

        script = 'LISTEN_PID=%s; export LISTEN_PID; exec "$0" -c "$1"' % pid
        with open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(["sh", "-c", script, str(tlslift_bin()), str(cfg)],
                                         env=env, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                         close_fds=False, preexec_fn=place_fds)

    def stderr(self):
        return self.stderr_path.read_text(errors="replace")

    def wait_log(self, text, timeout=5):
        return wait_until(lambda: text in self.stderr() or self.proc.poll() is not None, timeout) \
            and text in self.stderr()

    def fd_inode(self, fd):
        link = os.readlink("/proc/%d/fd/%d" % (self.proc.pid, fd))
        assert link.startswith("socket:["), link
        return int(link[len("socket:["):-1])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


@pytest.fixture
def activated():
    made = []

    def make(*a, **kw):
        p = Activated(*a, **kw)
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()


def served(port, upstream, path):
    st, _, body = http_request(port, "GET", path, timeout=5)
    assert st == 200, body
    assert json.loads(body)["path"] == path
    return any(r["path"] == path for r in list(upstream.requests))


@pytest.mark.parametrize("fdname", ["test", "something-else"], ids=["by-name", "by-address"])
def test_passed_socket_is_used(tmp_path, pki, upstream, activated, fdname):
    s = listening_socket()
    port = s.getsockname()[1]
    ino = os.fstat(s.fileno()).st_ino
    cfg = write_config(tmp_path, pki, upstream, [("test", port)])
    d = activated(tmp_path, cfg, [s], names=fdname)
    try:
        assert d.wait_log("ready"), d.stderr()
        assert d.proc.poll() is None, d.stderr()
        assert "using the socket systemd passed (fd 3)" in d.stderr(), d.stderr()
        assert d.fd_inode(3) == ino, "fd 3 in tlslift is not the socket the test passed"
        # Close the test's copy: from now on only tlslift holds the socket.
        s.close()
        for i in range(3):
            assert served(port, upstream, "/echo/activated%d" % i)
        assert "cannot listen" not in d.stderr()
    finally:
        s.close()
    assert d.stop() == 0


def test_unmatched_passed_socket_warns_and_closes(tmp_path, pki, upstream, activated):
    s1, s2 = listening_socket(), listening_socket()
    port, stray = s1.getsockname()[1], s2.getsockname()[1]
    cfg = write_config(tmp_path, pki, upstream, [("test", port)])
    d = activated(tmp_path, cfg, [s1, s2], names="test:stray")
    try:
        assert d.wait_log("ready"), d.stderr()
        log = d.stderr()
        assert "using the socket systemd passed (fd 3)" in log, log
        warn = [l for l in log.splitlines() if " warn " in l and "matches no route" in l]
        assert len(warn) == 1, log
        assert "4" in warn[0] and "stray" in warn[0], warn
        assert wait_until(lambda: not os.path.exists("/proc/%d/fd/4" % d.proc.pid), 2), \
            "the unmatched socket is still open in tlslift"
        s1.close()
        s2.close()
        assert served(port, upstream, "/echo/a")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", stray), timeout=1).close()
    finally:
        s1.close()
        s2.close()
    assert d.stop() == 0


def test_listen_pid_of_another_process_is_ignored(tmp_path, pki, upstream, activated):
    """Control: with LISTEN_PID not ours the fd is not used, so tlslift binds
    the address itself and fails, since the test holds it."""
    s = listening_socket()
    port = s.getsockname()[1]
    cfg = write_config(tmp_path, pki, upstream, [("test", port)])
    d = activated(tmp_path, cfg, [s], names="test", pid="1")
    try:
        rc = d.proc.wait(10)
    except subprocess.TimeoutExpired:
        raise AssertionError("tlslift used a socket passed for another pid: " + d.stderr())
    finally:
        s.close()
    assert rc == 1, d.stderr()
    assert "cannot listen on 127.0.0.1:%d" % port in d.stderr(), d.stderr()


def test_two_routes_two_sockets(tmp_path, pki, make_upstream, activated):
    """Two passed sockets, names in the other order from the routes."""
    up1, up2 = make_upstream(), make_upstream()
    s1, s2 = listening_socket(), listening_socket()
    p1, p2 = s1.getsockname()[1], s2.getsockname()[1]
    g = {"log_level": "info", "ca_file": str(pki.ca), "run_as_root": "yes"}
    text = render_ini([("tlslift", g),
                       ("route one", {"listen": "127.0.0.1:%d" % p1, "upstream": up1.url,
                                      "upstream_ca_file": str(pki.ca)}),
                       ("route two", {"listen": "127.0.0.1:%d" % p2, "upstream": up2.url,
                                      "upstream_ca_file": str(pki.ca)})])
    cfg = tmp_path / "two.ini"
    cfg.write_text(text)
    # fd 3 = the socket of route two, fd 4 = route one's.
    d = activated(tmp_path, cfg, [s2, s1], names="two:one")
    try:
        assert d.wait_log("ready"), d.stderr()
        assert d.fd_inode(3) == os.fstat(s2.fileno()).st_ino
        assert d.fd_inode(4) == os.fstat(s1.fileno()).st_ino
        s1.close()
        s2.close()
        assert served(p1, up1, "/echo/one")
        assert served(p2, up2, "/echo/two")
        assert not any(r["path"] == "/echo/one" for r in list(up2.requests))
        assert "matches no route" not in d.stderr()
    finally:
        s1.close()
        s2.close()
    assert d.stop() == 0
