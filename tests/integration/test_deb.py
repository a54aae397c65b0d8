"""The Debian package: packaging/build-deb.sh builds a .deb with everything in it.

Runs by default; TLSLIFT_SKIP_DEB=1 skips the build (about a minute) for quick
local runs. It is also skipped while the daemon is not built (no
build/daemon/tlslift, or TLSLIFT_BIN), since the package build compiles the
same sources. Needs dpkg-dev, debhelper and build-essential, plus the package's
Build-Depends (packaging/debian/control). The package's own unit tests are
left to the regular test run (DEB_BUILD_OPTIONS=nocheck).
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEBIAN = REPO / "packaging" / "debian"
BIN = Path(os.environ.get("TLSLIFT_BIN", str(REPO / "build" / "daemon" / "tlslift")))


def run(cmd, timeout=60, **kw):
    return subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=timeout, **kw)


def test_changelog_version_matches_meson():
    """The package version's upstream part is meson's project version."""
    meson = (REPO / "meson.build").read_text()
    m = re.search(r"project\([^)]*?version\s*:\s*'([^']+)'", meson, re.S)
    assert m, "no version in meson.build's project()"
    first = (DEBIAN / "changelog").read_text().splitlines()[0]
    d = re.match(r"tlslift \(([^)]+)\) ", first)
    assert d, first
    assert d.group(1).rsplit("-", 1)[0] == m.group(1), (
        "packaging/debian/changelog says %s, meson.build %s: add a changelog entry "
        "(dch -v %s-1 in a copy with debian/ at the top)" % (d.group(1), m.group(1), m.group(1)))


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    if os.environ.get("TLSLIFT_SKIP_DEB") == "1":
        pytest.skip("TLSLIFT_SKIP_DEB=1")
    if not BIN.exists():
        pytest.skip("the daemon is not built (%s missing), so neither is the package" % BIN)
    for tool, pkg in (("dpkg-buildpackage", "dpkg-dev"), ("dh", "debhelper")):
        if shutil.which(tool) is None:
            pytest.fail("%s not found: apt-get install %s (or TLSLIFT_SKIP_DEB=1)" % (tool, pkg))
    out = tmp_path_factory.mktemp("deb")
    env = dict(os.environ, DEB_BUILD_OPTIONS="nocheck", DEB_BUILD_PROFILES="nocheck",
               TMPDIR=str(out))
    r = run([REPO / "packaging" / "build-deb.sh", out / "out"], timeout=900, env=env)
    assert r.returncode == 0, "build-deb.sh failed:\n%s\n%s" % (r.stdout[-6000:], r.stderr[-6000:])
    debs = [p for p in (out / "out").glob("tlslift_*.deb")]
    assert len(debs) == 1, list((out / "out").iterdir())
    return debs[0]


@pytest.fixture(scope="module")
def contents(deb):
    r = run(["dpkg-deb", "-c", deb])
    assert r.returncode == 0, r.stderr
    # "-rw-r--r-- root/root 123 2026-01-01 00:00 ./usr/bin/tlslift" -> "usr/bin/tlslift"
    return {line.split()[5][2:].rstrip("/"): line.split()[0] for line in r.stdout.splitlines()}


@pytest.fixture(scope="module")
def unpacked(deb, tmp_path_factory):
    root = tmp_path_factory.mktemp("root")
    r = run(["dpkg-deb", "-x", deb, root])
    assert r.returncode == 0, r.stderr
    return root


def unit_path(contents, name):
    """Where the unit is: lib/systemd/system (Debian 12) or usr/lib/systemd/system (13)."""
    for d in ("usr/lib/systemd/system", "lib/systemd/system"):
        if "%s/%s" % (d, name) in contents:
            return "%s/%s" % (d, name)
    return None


def test_deb_lists_everything(contents):
    want = [
        "usr/bin/tlslift",
        "etc/tlslift/tlslift.ini",
        "usr/share/man/man8/tlslift.8.gz",
        "usr/share/man/man5/tlslift.ini.5.gz",
        "usr/share/doc/tlslift/copyright",
        "usr/share/doc/tlslift/examples/plain-http.ini",
        "usr/share/doc/tlslift/examples/old-tls.ini",
        "usr/share/doc/tlslift/examples/proxy.ini",
    ]
    missing = [p for p in want if p not in contents]
    # dh_compress gzips documents over 4 kB.
    missing += [d for d in ("operations.md", "interface.md")
                if not {"usr/share/doc/tlslift/" + d, "usr/share/doc/tlslift/%s.gz" % d} & set(contents)]
    missing += [u for u in ("tlslift.service", "tlslift@.service", "tlslift.socket")
                if unit_path(contents, u) is None]
    assert not missing, "not in the .deb: %s\n%s" % (missing, "\n".join(sorted(contents)))
    assert contents["usr/bin/tlslift"].startswith("-rwxr-xr-x")


def test_config_is_a_conffile(deb):
    r = run(["dpkg-deb", "-I", deb, "conffiles"])
    assert r.returncode == 0, r.stderr
    assert "/etc/tlslift/tlslift.ini" in r.stdout.split()


def test_control_fields(deb):
    r = run(["dpkg-deb", "-f", deb, "Package", "Depends"])
    assert r.returncode == 0, r.stderr
    fields = r.stdout
    assert "Package: tlslift" in fields
    for dep in ("adduser", "ca-certificates", "libuv1", "libmbedtls", "libllhttp", "libinih"):
        assert dep in fields, "Depends lacks %s: %s" % (dep, fields)


def test_postinst_creates_the_user_before_starting(deb):
    r = run(["dpkg-deb", "-I", deb, "postinst"])
    assert r.returncode == 0, r.stderr
    text = r.stdout
    assert "adduser --system" in text
    assert text.index("adduser --system") < text.index("deb-systemd-invoke")
    # The socket is an example: installed, not enabled.
    assert "deb-systemd-helper enable 'tlslift.service'" in text


def test_units_point_at_the_installed_binary(contents, unpacked):
    for name in ("tlslift.service", "tlslift@.service"):
        text = (unpacked / unit_path(contents, name)).read_text()
        assert "@bindir@" not in text
        assert re.search(r"^ExecStart=/usr/bin/tlslift -c /etc/tlslift/", text, re.M), text


def test_packaged_binary_runs(unpacked):
    exe = unpacked / "usr" / "bin" / "tlslift"
    r = run([exe, "--version"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "tlslift" in (r.stdout + r.stderr)


def test_packaged_default_config_checks_ok(unpacked):
    exe = unpacked / "usr" / "bin" / "tlslift"
    r = run([exe, "-t", "-c", unpacked / "etc" / "tlslift" / "tlslift.ini"])
    assert r.returncode == 0 and "configuration ok" in r.stdout + r.stderr, r.stdout + r.stderr


def test_lintian(deb):
    if shutil.which("lintian") is None:
        pytest.skip("lintian not installed (optional; Debian package: lintian)")
    r = run(["lintian", "--fail-on", "error", deb],
            timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
