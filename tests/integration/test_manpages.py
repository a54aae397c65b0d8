"""Man pages: they format without warnings and cover the whole interface.

docs/tlslift.8 must name every command-line option and every metric of
docs/interface.md; docs/tlslift.ini.5 every INI key of interface.md and of
daemon/conf.c's key table, with conf.c's default and range; and
packaging/tlslift.ini (installed as /etc/tlslift/tlslift.ini) must show the
documented defaults in its commented keys. Nothing the daemon implements may
be called planned: only proxy mode and workers = N still are.

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
CONF_C = REPO / "daemon" / "conf.c"

# What is still planned (docs/design.md); any other "planned" is stale.
STILL_PLANNED = re.compile(r"proxy|workers", re.I)
# Documents that once announced the features of this release as planned.
STATUS_DOCS = [DOCS / "tlslift.8", DOCS / "tlslift.ini.5", DOCS / "interface.md",
               DOCS / "operations.md", REPO / "packaging" / "tlslift.ini",
               REPO / "packaging" / "container.ini", REPO / "packaging" / "examples" / "old-tls.ini",
               REPO / "packaging" / "examples" / "plain-http.ini"]


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
        m = re.match(r"\|\s*`([a-z0-9_]+)`\s*\|([^|]*)\|", line)
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


def test_tlslift_8_names_every_metric():
    text = roff_text(DOCS / "tlslift.8")
    metrics = re.findall(r"^\| `(tlslift_[a-z_]+)` \|",
                         interface_section("Admin endpoints (`admin_listen`)"), re.M)
    assert len(metrics) >= 10, metrics
    missing = [m for m in metrics if not re.search(r"^\.BR? %s\b" % m, text, re.M)]
    assert not missing, "tlslift.8 does not name the metrics %s" % missing
    for word in ("SIGHUP", "SIGTERM", "SIGINT", "/healthz", "/metrics", "READY=1",
                 "RELOADING=1", "STOPPING=1", "WATCHDOG=1", "LISTEN_FDNAMES", "JOURNAL_STREAM"):
        assert word in text, word


def test_tlslift_ini_5_names_every_key():
    text = roff_text(DOCS / "tlslift.ini.5")
    keys = list(interface_keys()) + list(conf_c_keys())
    missing = sorted({k for k in keys if not re.search(r'^\.BI "%s = "' % k, text, re.M)})
    assert not missing, "tlslift.ini.5 does not describe %s" % missing


# ---------------------------------------------------------------------------
# daemon/conf.c's key table: the one source of keys, defaults and ranges
# ---------------------------------------------------------------------------

def c_value(expr, src):
    """Evaluate a C constant expression of conf.c (numbers, SEC, MINS, <<, *)."""
    names = {"SEC": 1000, "MINS": 60 * 1000}
    for m in re.finditer(r"^#define (\w+)\s+\(?([0-9][^/\n]*?)\)?\s*(?:/\*.*)?$", src, re.M):
        names.setdefault(m.group(1), eval(m.group(2).replace("ull", ""), {"__builtins__": {}}, names))
    return eval(expr.replace("ull", ""), {"__builtins__": {}}, names)


def duration_text(ms):
    """Milliseconds as conf.c's messages and the man page write them."""
    if ms == 0:
        return "0"
    return "%ds" % (ms // 1000) if ms % 1000 == 0 else "%dms" % ms


def conf_c_keys():
    """{key: (type, default text or None, (min text, max text) or None)} from conf.c."""
    src = CONF_C.read_text()
    table = re.search(r"static const struct keydef keys\[\] = \{(.*?)\n\};", src, re.S)
    assert table, "daemon/conf.c: no keys[] table"
    body = table.group(1)

    def func(name):
        m = re.search(r"^%s\(void\)\n\{(.*?)^\}" % name, src, re.S | re.M)
        if not m:
            m = re.search(r"^%s\([^)]*\)\n\{(.*?)^\}" % name, src, re.S | re.M)
        assert m, "daemon/conf.c: no function %s" % name
        return m.group(1)

    inits = func("conf_new") + func("route_init")

    def init(pattern):
        m = re.search(pattern, inits)
        return m.group(1) if m else None

    version = lambda v: v and "%s.%s" % (v[0], v[1:])
    literal = {
        "log_level": lambda: (init(r"c->log_level = LOG_(\w+);") or "").lower() or None,
        "access_log": lambda: init(r'c->access_log = strdup\("([^"]+)"\)'),
        "ca_file": lambda: re.search(r'^#define %s "([^"]+)"' % init(r"c->ca_file = strdup\((\w+)\)"),
                                     src, re.M).group(1),
        "max_connections": lambda: str(c_value(init(r"c->max_connections = ([^;]+);"), src)),
        "shutdown_timeout": lambda: duration_text(c_value(init(r"c->shutdown_timeout = ([^;]+);"),
                                                          src)),
        "upstream_min_version": lambda: version(init(r"r->up_min_version = (\d+);")),
        "tls_min_version": lambda: version(init(r"r->tls_min_version = (\d+);")),
        "host_header": lambda: (init(r"r->host_header = HOST_HEADER_(\w+);") or "").lower() or None,
    }
    keys = {}
    for m in re.finditer(r'\{"(\w+)", S_\w+, (K_\w+), (D_\w+), ([^,]+), ([^,]+), [^,]+, [^}]+\}',
                         body):
        name, ktype, lo, hi = m.group(1), m.group(2), m.group(4).strip(), m.group(5).strip()
        if name in literal:
            default = literal[name]()
            assert default, "daemon/conf.c: cannot find the default of %s" % name
        elif ktype == "K_BOOL":
            default = "yes" if init(r"->%s = true;" % name) else "no"
        else:
            default = None  # required, unset, or another key's value
        rng = None
        if ktype in ("K_UINT", "K_DURATION"):
            lo, hi = c_value(lo, src), c_value(hi, src)
            fmt = duration_text if ktype == "K_DURATION" else str
            rng = (fmt(lo), fmt(hi))
        keys[name] = (ktype, default, rng)
    for m in re.finditer(r"LIM\((\w+), (K_\w+), ([^,]+), ([^,]+), ([^)]+)\)", body):
        name, ktype = m.group(1), m.group(2)
        lo, hi, d = (c_value(x.strip(), src) for x in m.group(3, 4, 5))
        fmt = duration_text if ktype == "K_DURATION" else str
        keys[name] = (ktype, fmt(d), (fmt(lo), fmt(hi)))
    n = len(re.findall(r'^\s*(?:\{"|LIM\()', body, re.M))
    assert len(keys) == n and n > 25, "parsed %d of %d keys in conf.c: %s" % (len(keys), n, keys)
    return keys


def ini5_entry(text, key):
    """The text of KEY's entry in tlslift.ini.5, up to the next entry or section."""
    m = re.search(r'^\.BI "%s = ".*?(?=^\.(?:TP|SH|SS|PP)\b)' % key, text, re.M | re.S)
    assert m, "tlslift.ini.5 does not describe %s" % key
    return m.group(0)


def test_conf_c_keys_have_their_real_defaults_in_tlslift_ini_5():
    text = roff_text(DOCS / "tlslift.ini.5")
    wrong = []
    for key, (ktype, default, rng) in conf_c_keys().items():
        entry = ini5_entry(text, key)
        m = re.search(r"^Default:(?:\s*\n\.(?:B|BR|I|IR) (\S+)| (.*))", entry, re.M)
        if not m and "Required." not in entry:
            wrong.append("%s: neither Default: nor Required." % key)
            continue
        if default is not None:
            if not m or m.group(1) != default:
                wrong.append("%s: documented default %r, conf.c %r" % (
                    key, m and (m.group(1) or m.group(2)), default))
        if rng is not None and "From %s to %s." % rng not in entry:
            wrong.append("%s: no \"From %s to %s.\"" % ((key,) + rng))
    assert not wrong, "tlslift.ini.5 against daemon/conf.c:\n" + "\n".join(wrong)


def test_interface_md_defaults_match_conf_c():
    keys = interface_keys()
    conf = conf_c_keys()
    assert set(conf) <= set(keys), "interface.md lacks %s" % sorted(set(conf) - set(keys))
    wrong = []
    for key, (_, default, _) in conf.items():
        cell = re.match(r"`([^`]+)`", keys[key])
        if default is None:
            continue
        if cell is None or cell.group(1) != default:
            wrong.append("%s: interface.md %r, conf.c %r" % (key, keys[key], default))
    assert not wrong, "\n".join(wrong)


def test_nothing_implemented_is_called_planned():
    stale = []
    for path in STATUS_DOCS:
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            low = line.lower()
            if "rejects" in low and "unknown" in low:
                stale.append("%s:%d: %s" % (path.name, i + 1, line))
            if "planned" in low:
                near = " ".join(lines[max(0, i - 1):i + 2])
                if not STILL_PLANNED.search(near):
                    stale.append("%s:%d: %s" % (path.name, i + 1, line))
    assert not stale, "implemented, but called planned:\n" + "\n".join(stale)


def test_default_config_shows_the_documented_defaults():
    keys = interface_keys()
    conf = (REPO / "packaging" / "tlslift.ini").read_text()
    seen = 0
    for m in re.finditer(r"^;([a-z0-9_]+) = (.*)$", conf, re.M):
        key, value = m.group(1), m.group(2).strip()
        assert key in keys, "packaging/tlslift.ini: unknown key %s" % key
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
