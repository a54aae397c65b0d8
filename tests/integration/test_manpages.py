"""Man pages: they format without warnings and cover the whole interface.

docs/tlslift.8 must name every command-line option of docs/interface.md,
docs/tlslift.ini.5 every INI key (and the planned keys of the next release),
and packaging/tlslift.ini (installed as /etc/tlslift/tlslift.ini) must show
the documented defaults in its commented keys.

Needs groff (Debian: groff-base) and man-db; mandoc is used when present.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
PAGES = [DOCS / "tlslift.8", DOCS / "tlslift.ini.5"]

# Keys of the next release (not in docs/interface.md yet), documented as planned.
PLANNED_KEYS = ["admin_listen", "user", "run_as_root", "shutdown_timeout", "server_name",
                "tls_cert", "tls_key", "tls_min_version", "tls_legacy_3des"]


def run(cmd, timeout=30, **kw):
    return subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=timeout, **kw)


def interface_section(title):
    text = (DOCS / "interface.md").read_text()
    m = re.search(r"^## %s\n(.*?)(?=^## |\Z)" % re.escape(title), text, re.M | re.S)
    assert m, "docs/interface.md has no section %r" % title
    return m.group(1)


def interface_keys():
    """{key: default cell} from the tables of interface.md's Configuration section."""
    keys = {}
    for line in interface_section("Configuration (INI)").splitlines():
        m = re.match(r"\|\s*`([a-z_]+)`\s*\|([^|]*)\|", line)
        if m:
            keys[m.group(1)] = m.group(2).strip()
    assert len(keys) > 20, keys
    return keys


def interface_options():
    opts = set()
    for line in interface_section("Command line").splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            opts.update(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", first_cell))
    assert {"-c", "-t", "--version"} <= opts, opts
    return opts


def roff_text(page):
    """The page's source with roff's escaped hyphens turned into plain ones."""
    return page.read_text().replace("\\-", "-")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_groff_has_no_warnings(page):
    if shutil.which("groff") is None:
        pytest.fail("groff not installed (Debian package: groff-base)")
    r = run(["groff", "-man", "-Tutf8", "-ww", "-z", page])
    assert r.returncode == 0 and r.stderr == "", r.stderr


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_man_renders_without_warnings(page):
    if shutil.which("man") is None:
        pytest.fail("man not installed (Debian package: man-db)")
    r = run(["man", "--warnings", "-l", page], env={"PATH": "/usr/bin:/bin", "MANWIDTH": "80",
                                                   "LC_ALL": "C.UTF-8", "MANPAGER": "cat"})
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert "SYNOPSIS" in r.stdout and "SEE ALSO" in r.stdout


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_mandoc_lint(page):
    if shutil.which("mandoc") is None:
        pytest.skip("mandoc not installed (optional second opinion; Debian package: mandoc)")
    r = run(["mandoc", "-T", "lint", "-W", "warning", page])
    assert r.returncode == 0, r.stdout + r.stderr


def test_tlslift_8_names_every_option():
    text = roff_text(DOCS / "tlslift.8")
    missing = sorted(o for o in interface_options()
                     if not re.search(r"^\.(B|BI|BR|OP)\s[^\n]*(?<![\w-])%s(?![\w-])" % re.escape(o),
                                      text, re.M))
    assert not missing, "tlslift.8 does not describe %s" % missing
    for code in ("0", "1", "2"):
        assert re.search(r"^\.TP\n\.B %s\n" % code, text, re.M), "exit status %s" % code


def test_tlslift_8_names_every_status():
    text = roff_text(DOCS / "tlslift.8")
    statuses = re.findall(r"^\| (\d{3}) \|", interface_section("Responses tlslift makes itself"), re.M)
    assert statuses
    missing = [s for s in statuses if not re.search(r"^\.B %s$" % s, text, re.M)]
    assert not missing, missing


def test_tlslift_ini_5_names_every_key():
    text = roff_text(DOCS / "tlslift.ini.5")
    keys = list(interface_keys()) + PLANNED_KEYS
    missing = [k for k in keys if not re.search(r'^\.BI "%s = "' % k, text, re.M)]
    assert not missing, "tlslift.ini.5 does not describe %s" % missing


def test_planned_keys_are_marked_planned():
    text = roff_text(DOCS / "tlslift.ini.5")
    for k in PLANNED_KEYS:
        at = re.search(r'^\.BI "%s = "' % k, text, re.M).start()
        heading = text.rfind("\n.S", 0, at)
        assert "planned" in text[heading:text.index("\n", heading + 1)], k


def test_default_config_shows_the_documented_defaults():
    keys = interface_keys()
    conf = (REPO / "packaging" / "tlslift.ini").read_text()
    seen = 0
    for m in re.finditer(r"^;([a-z_]+) = (.*)$", conf, re.M):
        key, value = m.group(1), m.group(2).strip()
        assert key in keys or key in PLANNED_KEYS, "packaging/tlslift.ini: unknown key %s" % key
        if key not in keys:
            continue
        default = re.match(r"`([^`]+)`", keys[key])
        if default is None or default.group(1) in keys:
            continue  # "required", or a reference to another key
        assert value == default.group(1), "%s: %s, documented default %s" % (key, value, keys[key])
        seen += 1
    assert seen >= 10


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_version_is_meson_version(page):
    meson = (REPO / "meson.build").read_text()
    version = re.search(r"project\([^)]*?version\s*:\s*'([^']+)'", meson, re.S).group(1)
    th = re.search(r'^\.TH \S+ \d "[^"]*" "tlslift ([^"]+)"', page.read_text(), re.M)
    assert th and th.group(1) == version, "%s: .TH says %s, meson.build %s" % (
        page.name, th and th.group(1), version)
