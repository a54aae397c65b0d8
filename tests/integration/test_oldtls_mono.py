"""A .NET Framework-style client on Mono: HttpWebRequest with
`ServicePointManager.SecurityProtocol = SecurityProtocolType.Tls` (TLS 1.0 only, what an
unpatched .NET 3.5-4.5 app speaks), compiled with mcs at test time.

The certificate is validated the way an operator would set it up, not by a callback: the
mkcert CA goes into a Mono user trust store made for the test (`cert-sync --user ca.crt`
with HOME and XDG_CONFIG_HOME pointing into the test's temp dir), and
ServerCertificateValidationCallback is left alone. The host name is the real one: in a
private mount namespace (`unshare -m`) a hosts file mapping api.raygun.com to 127.0.0.1 is
bind-mounted over /etc/hosts, as the operator's hosts-file line would; where unshare/mount
are not allowed the client uses https://localhost:PORT (the leaf names localhost too).

The client POSTs a JSON body larger than a TLS record (Raygun4Net's shape: X-ApiKey,
application/json), then GETs a 200 KB response on the same keep-alive connection; the test
checks the upstream got the body byte for byte, the responses came back intact, and the
daemon logged a TLS 1.0 client. The same client without the CA in its store must fail with
a trust error, so the trust above is doing the work.

Debian packages: mono-mcs (mcs; pulls mono-runtime and libmono-system4.0-cil, which holds
System.dll / HttpWebRequest) and ca-certificates-mono (cert-sync).
"""

import base64
import hashlib
import json
import os
import shutil
import subprocess

import pytest

from harness import payload, sha256

MISSING = [t for t in ("mcs", "mono", "cert-sync") if shutil.which(t) is None]
pytestmark = pytest.mark.skipif(
    bool(MISSING), reason="needs Mono: %s not found (apt-get install mono-mcs mono-runtime "
                          "libmono-system4.0-cil ca-certificates-mono)" % ", ".join(MISSING))

CLIENT_CS = r"""
using System;
using System.IO;
using System.Net;
using System.Security.Cryptography;
using System.Text;

class Client {
    static byte[] ReadAll(Stream s) {
        var ms = new MemoryStream();
        s.CopyTo(ms);
        return ms.ToArray();
    }

    static string Hex(byte[] b) {
        var sb = new StringBuilder();
        foreach (var x in SHA256.Create().ComputeHash(b)) sb.Append(x.ToString("x2"));
        return sb.ToString();
    }

    static int Main(string[] args) {
        string baseUrl = args[0];
        byte[] body = File.ReadAllBytes(args[1]);
        ServicePointManager.SecurityProtocol = SecurityProtocolType.Tls;

        var post = (HttpWebRequest)WebRequest.Create(baseUrl + "/echo/entries");
        post.Method = "POST";
        post.ContentType = "application/json";
        post.Headers.Add("X-ApiKey", "test-api-key");
        post.ContentLength = body.Length;
        post.KeepAlive = true;
        post.Timeout = 15000;
        post.ReadWriteTimeout = 15000;
        using (var s = post.GetRequestStream()) s.Write(body, 0, body.Length);
        using (var resp = (HttpWebResponse)post.GetResponse()) {
            byte[] r = ReadAll(resp.GetResponseStream());
            Console.WriteLine("POST " + (int)resp.StatusCode + " " + Convert.ToBase64String(r));
        }

        var get = (HttpWebRequest)WebRequest.Create(baseUrl + "/size/200000");
        get.KeepAlive = true;
        get.Timeout = 15000;
        get.ReadWriteTimeout = 15000;
        using (var resp = (HttpWebResponse)get.GetResponse()) {
            byte[] r = ReadAll(resp.GetResponseStream());
            Console.WriteLine("GET " + (int)resp.StatusCode + " " + r.Length + " " + Hex(r));
        }
        return 0;
    }
}
"""


@pytest.fixture(scope="module")
def mono_client(tmp_path_factory):
    d = tmp_path_factory.mktemp("mono")
    src = d / "Client.cs"
    src.write_text(CLIENT_CS)
    exe = d / "Client.exe"
    r = subprocess.run(["mcs", "-r:System.dll", "-out:%s" % exe, str(src)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120, text=True)
    assert r.returncode == 0, "mcs failed:\n" + r.stdout + r.stderr
    return exe


def _mono_env(home):
    env = dict(os.environ)
    env["HOME"] = str(home)
    env["XDG_CONFIG_HOME"] = str(home / "config")
    env.pop("MONO_TLS_PROVIDER", None)
    (home / "config").mkdir(parents=True, exist_ok=True)
    return env


def _trust(home, ca):
    """A user trust store in HOME holding only CA (cert-sync --user)."""
    env = _mono_env(home)
    r = subprocess.run(["cert-sync", "--user", str(ca)], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60, text=True)
    assert r.returncode == 0, "cert-sync failed:\n" + r.stdout + r.stderr
    return env


def _hosts_namespace_works(tmp_path):
    if shutil.which("unshare") is None:
        return False
    hosts = tmp_path / "hosts.probe"
    hosts.write_text("127.0.0.1 api.raygun.com\n")
    try:
        r = subprocess.run(["unshare", "-m", "sh", "-c",
                            'mount --bind "$1" /etc/hosts && getent hosts api.raygun.com',
                            "sh", str(hosts)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=10, text=True)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0 and "127.0.0.1" in r.stdout


def _run_client(exe, port, body_file, env, tmp_path):
    if _hosts_namespace_works(tmp_path):
        hosts = tmp_path / "hosts"
        hosts.write_text("127.0.0.1 localhost\n127.0.0.1 api.raygun.com\n")
        url = "https://api.raygun.com:%d" % port
        cmd = ["unshare", "-m", "sh", "-c", 'mount --bind "$1" /etc/hosts && shift && exec "$@"',
               "sh", str(hosts), "mono", str(exe), url, str(body_file)]
    else:
        url = "https://localhost:%d" % port
        cmd = ["mono", str(exe), url, str(body_file)]
    r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=90, text=True)
    return url, r


def _raygun_body():
    # A Raygun-like crash report: JSON, UTF-8 with non-ASCII text, ~60 KB (several records).
    frames = [{"className": "Legacy.App.Worker%d" % i, "methodName": "Run\u00e9\u4e2d",
               "lineNumber": i, "raw": payload(200).hex()} for i in range(120)]
    report = {"occurredOn": "2026-12-03T18:09:51Z",
              "details": {"error": {"message": "Object reference not set \u2013 \u00fc",
                                    "stackTrace": frames}}}
    return json.dumps(report, ensure_ascii=False).encode("utf-8")


def test_mono_httpwebrequest_tls10(make_tls_daemon, upstream, mkcert_pki, mono_client, tmp_path):
    d = make_tls_daemon(upstream)
    env = _trust(tmp_path / "home", mkcert_pki.ca)
    body = _raygun_body()
    assert len(body) > 16384 * 2
    body_file = tmp_path / "report.json"
    body_file.write_bytes(body)
    url, r = _run_client(mono_client, d.port, body_file, env, tmp_path)
    assert r.returncode == 0, "mono client against %s failed:\n%s%s" % (url, r.stdout, r.stderr)

    lines = dict(l.split(" ", 1) for l in r.stdout.splitlines() if " " in l)
    status, echoed = lines["POST"].split(" ", 1)
    assert status == "200", r.stdout
    rec = json.loads(base64.b64decode(echoed))
    assert rec["method"] == "POST" and rec["path"] == "/echo/entries", rec
    assert rec["body_len"] == len(body) and rec["body_sha256"] == sha256(body), rec
    hdrs = {k.lower(): v for k, v in rec["headers"]}
    assert hdrs.get("x-apikey") == "test-api-key" and hdrs.get("content-type") == "application/json"
    assert "expect" not in hdrs, hdrs
    assert upstream.bodies[0] == body

    status, n, digest = lines["GET"].split(" ")
    assert (status, int(n), digest) == ("200", 200000,
                                        hashlib.sha256(payload(200000)).hexdigest()), r.stdout
    assert [x["path"] for x in upstream.requests] == ["/echo/entries", "/size/200000"]

    assert d.wait_log(r"client \S+ speaks TLS 1\.0"), d.stderr()
    assert not d.wait_log(r"client \S+ speaks TLS 1\.[123]", timeout=0.1), d.stderr()


def test_mono_without_trusted_ca_fails(make_tls_daemon, upstream, mono_client, tmp_path):
    """No CA in the client's store: the handshake fails on the client's side (TrustFailure),
    nothing reaches the upstream. Shows the test above validates for real."""
    d = make_tls_daemon(upstream)
    env = _mono_env(tmp_path / "empty-home")
    body_file = tmp_path / "b.json"
    body_file.write_bytes(b"{}")
    url, r = _run_client(mono_client, d.port, body_file, env, tmp_path)
    assert r.returncode != 0, r.stdout
    assert "TrustFailure" in r.stderr or "CERTIFICATE_VERIFY_FAILED" in r.stderr, r.stderr
    assert upstream.stats()["requests"] == 0
    assert d.alive()
