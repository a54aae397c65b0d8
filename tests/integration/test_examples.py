"""The shipped configurations pass `tlslift -t`.

packaging/tlslift.ini (installed as /etc/tlslift/tlslift.ini),
packaging/container.ini, the sidecar's ConfigMap and packaging/examples/*.ini
are checked by the built daemon; none is skipped, so a key the daemon rejects
fails the test. old-tls.ini's certificate and key are made with the very
`tlslift mkcert` command its comment gives, in a temp dir. proxy.ini
describes a mode that does not exist yet, so it must stay entirely commented
out.
"""

import os
import shlex
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGING = REPO / "packaging"
BIN = Path(os.environ.get("TLSLIFT_BIN", str(REPO / "build" / "daemon" / "tlslift")))


def run(cmd, timeout=30, **kw):
    return subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=timeout, **kw)


@pytest.fixture(scope="module")
def tlslift():
    if not BIN.exists():
        pytest.fail("tlslift binary not found at %s: build it (meson setup build && "
                    "ninja -C build) or set TLSLIFT_BIN" % BIN)
    return BIN


def check(tlslift, path):
    """Run tlslift -t on PATH: it must say "configuration ok"."""
    r = run([tlslift, "-t", "-c", path])
    out = (r.stdout + r.stderr).strip()
    assert r.returncode == 0 and "configuration ok" in out, (
        "tlslift -t -c %s exited %d:\n%s" % (path.name, r.returncode, out))


def test_default_config(tlslift):
    check(tlslift, PACKAGING / "tlslift.ini")


def test_plain_http_example(tlslift):
    check(tlslift, PACKAGING / "examples" / "plain-http.ini")


OLD_TLS_DIR = "/etc/tlslift/tls"


def test_old_tls_example(tlslift, tmp_path):
    """old-tls.ini, with its CA, certificate and key made here by the
    `tlslift mkcert` command its comment gives (its directory moved to a temp
    dir); the example's own paths stay as documented."""
    text = (PACKAGING / "examples" / "old-tls.ini").read_text()
    crt, key = OLD_TLS_DIR + "/localhost.crt", OLD_TLS_DIR + "/localhost.key"
    assert "tls_cert = %s\n" % crt in text and "tls_key = %s\n" % key in text, text
    cmds = [l.lstrip("; ").strip() for l in text.splitlines()
            if l.lstrip("; ").startswith("tlslift mkcert ")]
    assert cmds, "old-tls.ini: no `tlslift mkcert` command in its comment"
    argv = shlex.split(cmds[0])
    assert argv[:3] == ["tlslift", "mkcert", "--ca"] and argv[3] == OLD_TLS_DIR, argv
    certdir = tmp_path / "tls"
    r = run([tlslift, "mkcert", "--ca", certdir] + argv[4:], timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    wrote = r.stdout.split()
    for name in ("ca.crt", "localhost.crt", "localhost.key"):
        assert str(certdir / name) in wrote, (name, r.stdout)
    text = text.replace(OLD_TLS_DIR + "/", str(certdir) + "/")
    assert OLD_TLS_DIR not in "".join(l for l in text.splitlines() if not l.startswith(";"))
    conf = tmp_path / "old-tls.ini"
    conf.write_text(text)
    check(tlslift, conf)


def test_container_config(tlslift):
    """packaging/container.ini, the image's /etc/tlslift/tlslift.ini."""
    check(tlslift, PACKAGING / "container.ini")


def sidecar_config():
    """The tlslift.ini of packaging/k8s/sidecar.yaml's ConfigMap (a literal block)."""
    lines = (PACKAGING / "k8s" / "sidecar.yaml").read_text().splitlines()
    start = next(i for i, l in enumerate(lines) if l.strip() == "tlslift.ini: |") + 1
    indent = len(lines[start]) - len(lines[start].lstrip())
    out = []
    for l in lines[start:]:
        if l.strip() and len(l) - len(l.lstrip()) < indent:
            break
        out.append(l[indent:])
    return "\n".join(out) + "\n"


def test_sidecar_config(tlslift, tmp_path):
    crt, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    r = run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=localhost", "-keyout", key, "-out", crt], timeout=60)
    assert r.returncode == 0, r.stderr
    text = sidecar_config()
    assert "[route raygun]" in text and "listen = 127.0.0.1:8080" in text
    text = text.replace("/etc/tlslift-tls/tls.crt", str(crt))
    text = text.replace("/etc/tlslift-tls/tls.key", str(key))
    conf = tmp_path / "sidecar.ini"
    conf.write_text(text)
    check(tlslift, conf)


def test_proxy_example_is_all_comments():
    text = (PACKAGING / "examples" / "proxy.ini").read_text()
    active = [l for l in text.splitlines() if l.strip() and not l.lstrip().startswith((";", "#"))]
    assert not active, "proxy mode is not implemented: keep proxy.ini commented out: %s" % active
    assert "not implemented" in text.lower()
