"""Privileges: started as root with `user = NAME`, tlslift binds first (a port
below 1024 works), then runs as NAME's uid and gid; without `user` and without
`run_as_root = yes` it refuses to run as root."""

import os
import pwd
import socket
import urllib.request

import pytest

from harness import free_port, wait_until


def privileged_port():
    for p in range(980, 600, -1):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
            return p
        except OSError:
            continue
        finally:
            s.close()
    pytest.fail("no free port below 1024 on 127.0.0.1")


def status_ids(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Uid", "Gid", "Groups", "CapEff", "CapPrm"):
                out[k] = v.split()
    return out


def test_drops_to_user_after_binding(make_daemon, upstream, pki):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    nobody = pwd.getpwnam("nobody")
    port = privileged_port()
    admin = free_port()
    route = {"listen": "127.0.0.1:%d" % port, "upstream": upstream.url,
             "upstream_ca_file": str(pki.ca)}
    d = make_daemon(routes=[("test", route)],
                    glob={"user": "nobody", "run_as_root": None,
                          "admin_listen": "127.0.0.1:%d" % admin})
    keys = [l.split("=")[0].strip() for l in d.config_text.splitlines() if "=" in l]
    assert "run_as_root" not in keys and "user" in keys, keys
    assert d.port == port
    ids = status_ids(d.proc.pid)
    uid, gid = str(nobody.pw_uid), str(nobody.pw_gid)
    assert ids["Uid"] == [uid] * 4, ids
    assert ids["Gid"] == [gid] * 4, ids
    assert ids["Groups"] == [gid], ids
    assert int(ids["CapEff"][0], 16) == 0 and int(ids["CapPrm"][0], 16) == 0, ids
    assert "running as nobody (uid %s, gid %s)" % (uid, gid) in d.stderr(), d.stderr()
    # Serves on the privileged port it bound as root, admin endpoint too.
    d.assert_serving(upstream)
    with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % admin, timeout=5) as r:
        assert r.status == 200
    # Every thread dropped, not just the main one.
    for tid in os.listdir("/proc/%d/task" % d.proc.pid):
        with open("/proc/%d/task/%s/status" % (d.proc.pid, tid)) as f:
            uids = [l.split()[1:] for l in f if l.startswith("Uid:")][0]
        assert uids == [uid] * 4, (tid, uids)


def test_refuses_root_without_user(make_daemon, upstream):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    d = make_daemon(upstream, glob={"run_as_root": None}, start=False)
    d.expect_exit = True
    keys = [l.split("=")[0].strip() for l in d.config_text.splitlines() if "=" in l]
    assert "run_as_root" not in keys and "user" not in keys, keys
    d.start(wait=False)
    rc = d.proc.wait(10)
    assert rc == 1, d.stderr()
    assert "user = NAME" in d.stderr(), d.stderr()
    assert "refusing to run as root" in d.stderr(), d.stderr()
    # The port it bound before refusing is closed again.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", d.port), timeout=1).close()


def test_unknown_user_is_an_error(make_daemon, upstream):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    d = make_daemon(upstream, glob={"run_as_root": None, "user": "no-such-user-tl"}, start=False)
    d.expect_exit = True
    d.start(wait=False)
    rc = d.proc.wait(10)
    assert rc == 1, d.stderr()
    assert "no-such-user-tl" in d.stderr(), d.stderr()


def test_run_as_root_yes_stays_root(make_daemon, upstream):
    """Control for the first test: with run_as_root = yes (the harness default) the uid stays 0."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    d = make_daemon(upstream)
    assert status_ids(d.proc.pid)["Uid"] == ["0"] * 4
    assert wait_until(lambda: "running as root" in d.stderr(), 2)
