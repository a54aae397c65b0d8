"""A route accepting TLS 1.0 or 1.1 from clients logs a warning when the daemon starts (old
TLS is weak: keep it on loopback); tls_min_version = 1.2 does not."""

import re

import pytest


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_start_warning(make_tls_daemon, upstream, version):
    d = make_tls_daemon(upstream, tls_min_version=version, glob={"log_level": "info"})
    assert d.wait_log(r"tlslift \S+ ready"), d.stderr()
    warn = re.findall(r"^\S+ warn .*route test.*TLS 1\.[01].*$", d.stderr(), re.M)
    if version in ("1.0", "1.1"):
        assert len(warn) == 1 and ("TLS %s" % version) in warn[0], d.stderr()
    else:
        assert warn == [], d.stderr()
