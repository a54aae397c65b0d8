"""systemd units: systemd-analyze accepts them and rates the sandbox OK.

The units in systemd/ are templates (@bindir@ is substituted by whoever
installs them: meson, or packaging/debian/rules). Each test renders them into
its own temp dir with @bindir@ pointing at a directory that holds an
executable tlslift (the built one when there is one, else a stub, since
`systemd-analyze verify` only checks that the ExecStart= programs exist), and
points MANPATH at docs/ so that Documentation=man:... is checked too.

Needs the Debian package `systemd` (for systemd-analyze, 252 or later for
--offline) and `man-db`; PID 1 need not be systemd.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT_DIR = REPO / "systemd"
DOCS = REPO / "docs"
BUILT_BIN = Path(os.environ.get("TLSLIFT_BIN", str(REPO / "build" / "daemon" / "tlslift")))

# The unit files as installed, and the template each comes from.
UNITS = {
    "tlslift.service": "tlslift.service.in",
    "tlslift@.service": "tlslift@.service.in",
    "tlslift.socket": "tlslift.socket",
}
# systemd-analyze security's levels, best first.
LEVELS = ["SAFE", "OK", "MEDIUM", "EXPOSED", "UNSAFE"]


def run(cmd, timeout=60, **kw):
    return subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=timeout, **kw)


@pytest.fixture(scope="module")
def analyze():
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze not installed (Debian package: systemd)")
    r = run([exe, "--version"], timeout=20)
    if r.returncode != 0:
        pytest.skip("systemd-analyze cannot run here: %s" % (r.stderr.strip() or r.stdout.strip()))
    m = re.match(r"systemd (\d+)", r.stdout)
    if not m or int(m.group(1)) < 252:
        pytest.skip("systemd-analyze too old for --offline (need 252, have %r)" % r.stdout[:40])
    return exe


def render(dest, bindir):
    """Write the units into DEST with @bindir@ = BINDIR; return DEST."""
    for name, src in UNITS.items():
        text = (UNIT_DIR / src).read_text()
        (dest / name).write_text(text.replace("@bindir@", str(bindir)))
    return dest


@pytest.fixture
def units(tmp_path):
    """(unit dir, env) with the rendered units, a bindir and a MANPATH."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "tlslift"
    if BUILT_BIN.exists():
        exe.symlink_to(BUILT_BIN)
    else:
        exe.write_text("#!/bin/sh\nexit 0\n")
        exe.chmod(0o755)
    udir = tmp_path / "units"
    udir.mkdir()
    render(udir, bindir)

    env = dict(os.environ)
    if shutil.which("man"):
        man = tmp_path / "man"
        for page, sec in (("tlslift.8", "8"), ("tlslift.ini.5", "5")):
            (man / ("man" + sec)).mkdir(parents=True, exist_ok=True)
            shutil.copy(DOCS / page, man / ("man" + sec) / page)
        env["MANPATH"] = str(man)
    env["SYSTEMD_LOG_COLOR"] = "0"
    env["SYSTEMD_PAGER"] = ""
    return udir, env


def verify(analyze, udir, env, *names):
    args = [analyze, "verify"]
    if "MANPATH" not in env:
        args.append("--man=no")
    r = run(args + ["./" + n for n in names], cwd=udir, env=env)
    out = (r.stdout + r.stderr).strip()
    # Only lines about our units count: a host may have odd units of its own.
    ours = [line for line in out.splitlines() if "tlslift" in line]
    assert r.returncode == 0 and not ours, "systemd-analyze verify %s:\n%s" % (" ".join(names), out)


def test_service_and_socket_verify(analyze, units):
    udir, env = units
    verify(analyze, udir, env, "tlslift.service", "tlslift.socket")


def test_template_instance_verifies(analyze, units):
    udir, env = units
    verify(analyze, udir, env, "tlslift@example.service")


def exposure(analyze, udir, env, name):
    r = run([analyze, "security", "--offline=true", "--no-pager", "./" + name], cwd=udir, env=env)
    out = r.stdout + r.stderr
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", out)
    assert m, "no overall exposure level in:\n%s" % out
    return float(m.group(1)), m.group(2), out


@pytest.mark.parametrize("name", ["tlslift.service", "tlslift@example.service"])
def test_sandbox_rated_ok_or_better(analyze, units, name):
    udir, env = units
    value, level, out = exposure(analyze, udir, env, name)
    assert level in LEVELS, out
    assert LEVELS.index(level) <= LEVELS.index("OK") and value < 5.0, (
        "%s exposure %.1f %s, want OK or better:\n%s" % (name, value, level, out))


def service_lines(text):
    """The [Service] section as a list of 'Key=value' lines, comments dropped."""
    lines, inside = [], False
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            inside = line == "[Service]"
        elif inside and line and not line.startswith("#"):
            lines.append(line)
    return lines


def test_service_keeps_the_contract():
    text = (UNIT_DIR / "tlslift.service.in").read_text()
    lines = service_lines(text)
    for want in [
        "Type=notify",
        "ExecStart=@bindir@/tlslift -c /etc/tlslift/tlslift.ini",
        "ExecStartPre=@bindir@/tlslift -t -c /etc/tlslift/tlslift.ini",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "WatchdogSec=30s",
        "User=tlslift",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
    ]:
        assert want in lines, "tlslift.service.in lacks %r" % want
    # A configuration that fails -t must make "systemctl reload" fail, before
    # the signal is sent.
    reloads = [l for l in lines if l.startswith("ExecReload=")]
    assert reloads[-1] == "ExecReload=/bin/kill -HUP $MAINPID", reloads


def test_template_has_the_same_sandbox():
    """tlslift@.service differs from tlslift.service only in the file it reads."""
    plain = service_lines((UNIT_DIR / "tlslift.service.in").read_text())
    templ = service_lines((UNIT_DIR / "tlslift@.service.in").read_text())
    templ = [l.replace("/etc/tlslift/%i.ini", "/etc/tlslift/tlslift.ini") for l in templ]
    assert plain == templ


def test_socket_examples():
    text = (UNIT_DIR / "tlslift.socket").read_text()
    listen = re.findall(r"^ListenStream=(\S+)", text, re.M)
    assert listen == ["127.0.0.1:443", "127.0.0.1:8080"]
    assert re.search(r"^FileDescriptorName=\S+", text, re.M)
    assert re.search(r"^Service=tlslift\.service$", text, re.M)
