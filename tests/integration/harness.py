"""Test harness for tlslift's integration tests.

What lives here (conftest.py turns it into fixtures):

- Pki: a throw-away CA and leaf certificates made with the openssl CLI.
- Upstream: an HTTPS/1.1 keep-alive server (Python ssl + ThreadingHTTPServer)
  that records what it receives and counts connections, handshakes and
  resumed handshakes.
- Blackhole: a TCP listener that accepts and never speaks (TLS timeouts).
- Daemon: one tlslift process with its config file and its stderr file.
- RawConn / read_response: a tiny HTTP/1.x client over a raw socket, for the
  tests where exact bytes matter.

Every wait in here is bounded: sockets have timeouts, subprocesses have
timeouts, polling loops have deadlines.
"""

import hashlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_BIN = REPO / "build" / "daemon" / "tlslift"


def tlslift_bin():
    return Path(os.environ.get("TLSLIFT_BIN", str(DEFAULT_BIN)))


def sha256(data):
    return hashlib.sha256(data).hexdigest()


_payload_cache = {}


def payload(n):
    """N deterministic pseudo-random bytes (the same N gives the same bytes)."""
    data = _payload_cache.get(n)
    if data is None:
        data = random.Random(n * 7919 + 1).randbytes(n)
        if n <= 16 * 1024 * 1024:
            _payload_cache[n] = data
    return data


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout, interval=0.02):
    """Poll pred() until it is true or timeout seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def run(cmd, timeout=30, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout, text=True, **kw)


# --------------------------------------------------------------------------
# PKI
# --------------------------------------------------------------------------

_CA_CONF = """\
[ ca ]
default_ca = test_ca

[ test_ca ]
dir = {dir}
database = $dir/index.txt
serial = $dir/serial
new_certs_dir = $dir/newcerts
certificate = $dir/ca.crt
private_key = $dir/ca.key
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
default_days = 30
email_in_dn = no

[ policy_any ]
commonName = supplied

[ req ]
distinguished_name = req_dn
prompt = no

[ req_dn ]
CN = unused

[ v3_ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
"""

_LEAF_EXT = """\
[ leaf ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = {san}
"""


class Pki:
    """A test CA and leaf certificates, generated with the openssl CLI.

    Attributes are paths: ca, ca_key, and for each leaf NAME the pair
    (cert, key) in self.leaves[NAME]:
      localhost    RSA, SAN DNS:localhost, IP:127.0.0.1, from the CA
      expired      same names, valid January 2020 only
      wronghost    SAN DNS:other.example
      selfsigned   localhost, self-signed (not from the CA)
      ec           ECDSA P-256 localhost leaf from the CA
      chain        localhost leaf from an intermediate CA; the cert file holds
                   leaf + intermediate (what a server should send)
      chain_noint  the same leaf without the intermediate (incomplete chain)
    """

    def __init__(self, root):
        self.dir = Path(root)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "newcerts").mkdir(exist_ok=True)
        (self.dir / "index.txt").write_text("")
        (self.dir / "serial").write_text("1000\n")
        self.conf = self.dir / "ca.cnf"
        self.conf.write_text(_CA_CONF.format(dir=self.dir))
        self.ca = self.dir / "ca.crt"
        self.ca_key = self.dir / "ca.key"
        self.leaves = {}
        self._make_ca()
        self._leaf("localhost", "localhost", "DNS:localhost, IP:127.0.0.1")
        self._leaf("expired", "localhost", "DNS:localhost, IP:127.0.0.1",
                   start="20200101000000Z", end="20200201000000Z")
        self._leaf("wronghost", "other.example", "DNS:other.example")
        self._selfsigned("selfsigned", "localhost", "DNS:localhost, IP:127.0.0.1")
        self._leaf("ec", "localhost", "DNS:localhost, IP:127.0.0.1", keytype="ec")
        self._intermediate()
        self._leaf("chain_noint", "localhost", "DNS:localhost, IP:127.0.0.1",
                   signer=(self.int_ca, self.int_key))
        full = self.dir / "chain.crt"
        full.write_text(self.leaves["chain_noint"][0].read_text() + self.int_ca.read_text())
        self.leaves["chain"] = (full, self.leaves["chain_noint"][1])

    def _ssl(self, *args):
        r = run(["openssl", *args], timeout=60)
        if r.returncode != 0:
            raise RuntimeError("openssl %s failed: %s%s" % (" ".join(args), r.stdout, r.stderr))
        return r

    def _key(self, path, keytype="rsa"):
        if keytype == "ec":
            self._ssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                      "-out", str(path))
        else:
            self._ssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                      "-out", str(path))

    def _intermediate(self):
        self.int_key = self.dir / "int.key"
        self.int_ca = self.dir / "int.crt"
        csr = self.dir / "int.csr"
        ext = self.dir / "int.ext"
        ext.write_text("[ int ]\nbasicConstraints = critical, CA:TRUE, pathlen:0\n"
                       "keyUsage = critical, keyCertSign, cRLSign\n"
                       "subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n")
        self._key(self.int_key)
        self._ssl("req", "-config", str(self.conf), "-new", "-key", str(self.int_key),
                  "-subj", "/CN=tlslift test intermediate", "-out", str(csr))
        self._ssl("ca", "-batch", "-config", str(self.conf), "-notext", "-in", str(csr),
                  "-out", str(self.int_ca), "-extfile", str(ext), "-extensions", "int", "-days", "30")

    def _make_ca(self):
        self._key(self.ca_key)
        self._ssl("req", "-config", str(self.conf), "-new", "-x509", "-key", str(self.ca_key),
                  "-subj", "/CN=tlslift test CA", "-days", "30", "-sha256",
                  "-extensions", "v3_ca", "-out", str(self.ca))

    def _leaf(self, name, cn, san, start=None, end=None, keytype="rsa", signer=None):
        key = self.dir / (name + ".key")
        csr = self.dir / (name + ".csr")
        crt = self.dir / (name + ".crt")
        ext = self.dir / (name + ".ext")
        ext.write_text(_LEAF_EXT.format(san=san))
        self._key(key, keytype)
        self._ssl("req", "-config", str(self.conf), "-new", "-key", str(key),
                  "-subj", "/CN=" + cn, "-out", str(csr))
        args = ["ca", "-batch", "-config", str(self.conf), "-notext",
                "-in", str(csr), "-out", str(crt), "-extfile", str(ext), "-extensions", "leaf"]
        if signer:
            args += ["-cert", str(signer[0]), "-keyfile", str(signer[1])]
        if start:
            args += ["-startdate", start, "-enddate", end]
        else:
            args += ["-days", "30"]
        self._ssl(*args)
        self.leaves[name] = (crt, key)

    def _selfsigned(self, name, cn, san):
        key = self.dir / (name + ".key")
        crt = self.dir / (name + ".crt")
        self._key(key)
        self._ssl("req", "-config", str(self.conf), "-new", "-x509", "-key", str(key),
                  "-subj", "/CN=" + cn, "-days", "30", "-sha256",
                  "-addext", "subjectAltName=" + san,
                  "-addext", "basicConstraints=critical,CA:FALSE",
                  "-addext", "extendedKeyUsage=serverAuth",
                  "-out", str(crt))
        self.leaves[name] = (crt, key)

    def cert(self, name):
        return self.leaves[name]


# --------------------------------------------------------------------------
# Upstream HTTPS server
# --------------------------------------------------------------------------

HOP_BY_HOP_RESPONSE = (
    "Connection: keep-alive, X-Resp-Drop\r\n"
    "Keep-Alive: timeout=30, max=100\r\n"
    "Proxy-Connection: keep-alive\r\n"
    "X-Resp-Drop: must-not-reach-client\r\n"
    "X-Resp-Keep: yes\r\n"
)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tlslift-test-upstream"
    sys_version = ""

    # Set per server in Upstream.__init__ through a subclass.
    up = None

    def setup(self):
        self.timeout = self.up.idle_close if self.up.idle_close else 20
        super().setup()

    def log_message(self, fmt, *args):  # keep the test output clean
        self.up._log(fmt % args)

    # Every method goes through one handler.
    def do_GET(self):
        self._handle()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_GET

    def _read_body(self):
        te = self.headers.get_all("Transfer-Encoding") or []
        cl = self.headers.get_all("Content-Length") or []
        if te:
            if [t.strip().lower() for t in ",".join(te).split(",")] != ["chunked"]:
                raise ValueError("unsupported transfer-encoding %r" % te)
            parts = []
            while True:
                line = self.rfile.readline(1024)
                if not line.endswith(b"\r\n"):
                    raise ValueError("bad chunk line %r" % line)
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    # Trailers up to the empty line.
                    while True:
                        t = self.rfile.readline(8192)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    return b"".join(parts), "chunked"
                data = self.rfile.read(size)
                if len(data) != size:
                    raise ValueError("short chunk")
                parts.append(data)
                if self.rfile.read(2) != b"\r\n":
                    raise ValueError("chunk without CRLF")
        if cl:
            n = int(cl[0])
            if self.path.startswith("/slowread"):
                # A slow consumer: 16 KiB every 5 ms (back-pressure tests).
                parts, left = [], n
                while left:
                    d = self.rfile.read(min(16384, left))
                    if not d:
                        break
                    parts.append(d)
                    left -= len(d)
                    time.sleep(0.005)
                data = b"".join(parts)
            else:
                data = self.rfile.read(n) if n else b""
            if len(data) != n:
                raise ValueError("short body")
            return data, "length"
        return b"", "none"

    def _handle(self):
        up = self.up
        head = {
            "method": self.command,
            "path": self.path,
            "version": self.request_version,
            "headers": [[k, v] for k, v in self.headers.items()],
            "conn": self._conn_id,
        }
        up._record_head(head)
        if up.stall or self.path.split("?")[0] in ("/stall", "/stall/"):
            # Accept the request, then never answer.
            up.stop_event.wait(30)
            self.close_connection = True
            return
        try:
            body, framing = self._read_body()
        except Exception as e:  # noqa: BLE001 - any bad framing is "no request"
            up._log("bad request body: %r" % e)
            self.close_connection = True
            return
        rec = dict(head)
        rec["framing"] = framing
        rec["body_len"] = len(body)
        rec["body_sha256"] = sha256(body)
        rec["body"] = body.decode("latin-1") if len(body) <= 4096 else None
        up._record_request(rec, body)
        self._respond(rec, body)

    def _write(self, data):
        self.wfile.write(data)

    def _respond(self, rec, body):
        p = self.path.split("?", 1)[0]
        parts = p.strip("/").split("/")
        head_only = self.command == "HEAD"
        kind = parts[0] if parts else ""
        arg = parts[1] if len(parts) > 1 else ""
        if kind == "size":
            n = int(arg)
            data = payload(n)
            self._write(("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                         "Content-Length: %d\r\nX-Body-Sha256: %s\r\n\r\n" % (n, sha256(data))).encode())
            if not head_only:
                self._write(data)
        elif kind == "chunked":
            n = int(arg)
            data = payload(n)
            out = [("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                    "Transfer-Encoding: chunked\r\nX-Body-Sha256: %s\r\n\r\n" % sha256(data)).encode()]
            if not head_only:
                # Uneven chunk sizes, so chunk boundaries fall everywhere.
                i, step = 0, 1
                while i < n:
                    c = data[i:i + step]
                    out.append(b"%x\r\n" % len(c) + c + b"\r\n")
                    i += len(c)
                    step = step * 3 + 7 if step < 40000 else 1000 + (i % 5000)
                out.append(b"0\r\n\r\n")
            self._write(b"".join(out))
        elif kind in ("close", "close10"):
            n = int(arg)
            data = payload(n)
            if kind == "close":
                status = "HTTP/1.1 200 OK\r\nConnection: close\r\n"
            else:
                status = "HTTP/1.0 200 OK\r\n"
            self._write((status + "Content-Type: application/octet-stream\r\n"
                         "X-Body-Sha256: %s\r\n\r\n" % sha256(data)).encode())
            if not head_only:
                self._write(data)
            self.close_connection = True
        elif kind == "sizeclose":
            # Content-Length, then Connection: close: this connection must not be pooled.
            n = int(arg)
            self._write(("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                         "Content-Length: %d\r\nConnection: close\r\n\r\n" % n).encode() + payload(n))
            self.close_connection = True
        elif kind == "trickle":
            # The response in many tiny writes: each one becomes its own TLS record.
            n = int(arg)
            data = payload(n)
            head = ("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                    "Content-Length: %d\r\n\r\n" % n).encode()
            msg = head + data
            for i in range(0, len(msg), 7):
                self._write(msg[i:i + 7])
        elif kind == "earlyhints":
            b = b"final\n"
            self._write(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
                        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\n" + b)
        elif kind == "clte":
            # Response smuggling shape: both framings.
            self._write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                        b"3\r\nabc\r\n0\r\n\r\n")
            self.close_connection = True
        elif kind == "twocl":
            self._write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde")
            self.close_connection = True
        elif kind == "cookies":
            b = b"ok\n"
            self._write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nSet-Cookie: a=1; Path=/\r\n"
                        b"Set-Cookie: b=2; Expires=Wed, 09 Jun 2027 10:18:14 GMT\r\n"
                        b"Content-Length: 3\r\n\r\n" + b)
        elif kind == "304cl":
            # A 304 may carry the Content-Length of the representation; it still has no body.
            self._write(b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 1234\r\n\r\n")
        elif kind == "status":
            code = int(arg)
            if code in (204, 304):
                extra = "ETag: \"v1\"\r\n" if code == 304 else ""
                self._write(("HTTP/1.1 %d %s\r\n%s\r\n" % (code, "No Content" if code == 204 else "Not Modified", extra)).encode())
            else:
                b = b"status %d\n" % code
                self._write(("HTTP/1.1 %d Whatever\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n"
                             % (code, len(b))).encode() + (b"" if head_only else b))
        elif kind in ("mirror", "slowread"):
            # The request body back, byte for byte, with a Content-Length.
            self._write(("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                         "Content-Length: %d\r\nX-Body-Sha256: %s\r\n\r\n" % (len(body), sha256(body))).encode())
            if not head_only:
                self._write(body)
        elif kind == "hopbyhop":
            b = b"ok\n"
            self._write(("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s\r\n"
                         % (len(b), HOP_BY_HOP_RESPONSE)).encode() + b)
        elif kind == "cut":
            # Promise 2N bytes, send N, then drop the connection.
            n = int(arg)
            self._write(("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                         "Content-Length: %d\r\n\r\n" % (2 * n)).encode() + payload(n))
            self.close_connection = True
        elif kind == "stallbody":
            # Send the head and a part of the body, then stall.
            self._write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\nabc")
            self.up.stop_event.wait(30)
            self.close_connection = True
        elif kind == "garbage":
            self._write(b"THIS IS NOT HTTP\r\n\r\n")
            self.close_connection = True
        elif kind == "delay":
            # Answer after MS milliseconds (concurrency tests).
            time.sleep(int(arg) / 1000.0)
            b = json.dumps(rec).encode()
            self._write(("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         "Content-Length: %d\r\n\r\n" % len(b)).encode() + b)
        elif kind == "drop":
            # Close without a byte of response.
            self.close_connection = True
        else:
            b = json.dumps(rec).encode()
            self._write(("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         "Content-Length: %d\r\n\r\n" % len(b)).encode() + (b"" if head_only else b))


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, up, addr, handler):
        self.up = up
        super().__init__(addr, handler)

    def finish_request(self, request, client_address):
        up = self.up
        cid = up._new_conn()
        request.settimeout(5)
        try:
            tls = up.ctx.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
            tls.do_handshake()
        except Exception as e:  # noqa: BLE001
            up._handshake_failed(e)
            raise _Quiet()
        up._handshake_ok(tls)
        try:
            h = self.RequestHandlerClass.__new__(self.RequestHandlerClass)
            h._conn_id = cid
            h.__init__(tls, client_address, self)
        finally:
            up._conn_closed()
            _close_tls(tls)

    def handle_error(self, request, client_address):
        pass

    def shutdown_request(self, request):
        try:
            request.close()
        except OSError:
            pass


class _Quiet(Exception):
    pass


def _close_tls(tls):
    """Send close_notify (bounded), then close: like a well-behaved server."""
    try:
        tls.settimeout(0.5)
        raw = tls.unwrap()
        raw.close()
    except Exception:  # noqa: BLE001
        pass
    try:
        tls.close()
    except OSError:
        pass


class Upstream:
    """An HTTPS server on 127.0.0.1:ephemeral, reached as https://localhost:PORT.

    Options:
      cert         (certfile, keyfile)
      max_version  "1.2" or "1.3"
      tls11_only   serve TLS 1.1 only (legacy ciphers, SECLEVEL=0)
      stall        every request is read, then never answered
      idle_close   seconds a keep-alive connection may idle before the server
                   closes it (None: 20 s)
      port         a fixed port (default: ephemeral)
      curve        the one ECDHE group the server accepts (e.g. "secp384r1")
      ciphers      OpenSSL TLS 1.2 cipher string

    Paths: /echo (JSON of the request), /size/N, /chunked/N, /close/N,
    /close10/N, /304cl, /slowread (a slow /mirror), /sizeclose/N, /trickle/N, /earlyhints, /clte, /twocl, /cookies, /status/CODE, /mirror, /delay/MS, /hopbyhop, /cut/N, /stall,
    /stallbody, /garbage, /drop. See _Handler._respond.
    """

    def __init__(self, cert, max_version="1.3", tls11_only=False, stall=False,
                 idle_close=None, port=0, curve=None, ciphers=None):
        self.cert = cert
        self.curve = curve
        self.ciphers = ciphers
        self.stall = stall
        self.idle_close = idle_close
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.connections = 0
        self.open_connections = 0
        self.handshakes = 0
        self.resumed = 0
        self.handshake_failures = []
        self.versions = []
        self.sni = []
        self.heads = []
        self.requests = []
        self.bodies = []
        self.logs = []
        self.ctx = self._context(max_version, tls11_only)
        handler = type("Handler", (_Handler,), {"up": self})
        self.server = _TLSServer(self, ("127.0.0.1", port), handler)
        self.port = self.server.server_address[1]
        self.host = "localhost"
        self.url = "https://localhost:%d" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def _context(self, max_version, tls11_only):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.cert[0]), str(self.cert[1]))
        if tls11_only:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
                ctx.minimum_version = ssl.TLSVersion.TLSv1_1
                ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        else:
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.maximum_version = {"1.2": ssl.TLSVersion.TLSv1_2,
                                   "1.3": ssl.TLSVersion.TLSv1_3}[max_version]
            if self.ciphers:
                ctx.set_ciphers(self.ciphers)  # TLS 1.2 suites
            if self.curve:
                ctx.set_ecdh_curve(self.curve)  # the only group: HelloRetryRequest in 1.3

        def on_sni(sslobj, name, _ctx):
            with self.lock:
                self.sni.append(name)
        ctx.sni_callback = on_sni
        return ctx

    # -- bookkeeping, called from server threads --
    def _new_conn(self):
        with self.lock:
            self.connections += 1
            self.open_connections += 1
            return self.connections

    def _conn_closed(self):
        with self.lock:
            self.open_connections -= 1

    def _handshake_ok(self, tls):
        with self.lock:
            self.handshakes += 1
            if tls.session_reused:
                self.resumed += 1
            self.versions.append(tls.version())

    def _handshake_failed(self, e):
        with self.lock:
            self.open_connections -= 1
            self.handshake_failures.append(repr(e))

    def _record_head(self, head):
        with self.lock:
            self.heads.append(head)

    def _record_request(self, rec, body):
        with self.lock:
            self.requests.append(rec)
            self.bodies.append(body)

    def _log(self, msg):
        with self.lock:
            self.logs.append(msg)

    def stats(self):
        with self.lock:
            return {"connections": self.connections, "open": self.open_connections,
                    "handshakes": self.handshakes, "resumed": self.resumed,
                    "handshake_failures": len(self.handshake_failures),
                    "heads": len(self.heads), "requests": len(self.requests),
                    "versions": list(self.versions), "sni": list(self.sni)}

    def describe(self):
        s = self.stats()
        with self.lock:
            s["failures"] = list(self.handshake_failures[-5:])
            s["log"] = list(self.logs[-10:])
        return s

    def stop(self):
        self.stop_event.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class Blackhole:
    """Accepts TCP connections and never sends a byte (a TLS handshake stalls)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.url = "https://localhost:%d" % self.port
        self.accepted = []
        self.stopping = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
                self.accepted.append(c)
            except OSError:
                continue

    def stop(self):
        self.stopping = True
        self.thread.join(2)
        for c in self.accepted:
            c.close()
        self.sock.close()


class Tarpit:
    """A listener whose accept queue is full: TCP connects to it hang (connect timeouts)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.url = "https://localhost:%d" % self.port
        self.fill = []
        for _ in range(4):
            f = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            f.setblocking(False)
            try:
                f.connect(("127.0.0.1", self.port))
            except BlockingIOError:
                pass
            self.fill.append(f)
        time.sleep(0.1)

    def stop(self):
        for f in self.fill:
            f.close()
        self.sock.close()


# --------------------------------------------------------------------------
# Raw HTTP client
# --------------------------------------------------------------------------

class Response:
    def __init__(self):
        self.version = None
        self.status = None
        self.reason = None
        self.headers = []          # [(name, value)] as received
        self.body = b""
        self.raw = b""             # every byte of this response, interim ones included
        self.interim = []          # [(status, headers)] for 1xx
        self.framing = None        # "length", "chunked", "close", "none"
        self.complete = False

    def header(self, name, default=None):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return default

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def has_header(self, name):
        return any(k.lower() == name.lower() for k, _ in self.headers)

    def __repr__(self):
        return "<Response %s %s %r body=%d bytes>" % (self.status, self.reason, self.headers, len(self.body))


def assert_tlslift_error(r, status):
    """r is one of tlslift's own responses: status, text/plain, one line, Connection: close."""
    assert r.status == status, r
    assert r.version == "HTTP/1.1", r.version
    assert r.header("Content-Type", "").split(";")[0].strip() == "text/plain", r.headers
    assert r.header("Connection", "").lower() == "close", r.headers
    assert r.header("Content-Length") is not None and int(r.header("Content-Length")) == len(r.body), r.headers
    assert re.fullmatch(rb"tlslift: [^\r\n]+\n", r.body), r.body


class ConnClosed(Exception):
    pass


class RawConn:
    """One client TCP connection to the daemon, with a read buffer."""

    def __init__(self, port, timeout=5, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.timeout = timeout
        self.buf = bytearray()
        self.eof = False

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _fill(self, timeout=None):
        if self.eof:
            raise ConnClosed()
        self.sock.settimeout(timeout if timeout is not None else self.timeout)
        try:
            d = self.sock.recv(262144)
        except ConnectionResetError:
            d = b""
        if not d:
            self.eof = True
            raise ConnClosed()
        self.buf += d

    def _line(self, deadline):
        start = 0
        while True:
            i = self.buf.find(b"\r\n", start)
            if i >= 0:
                break
            if len(self.buf) > 1 << 20:
                raise ValueError("line too long")
            start = max(0, len(self.buf) - 1)
            self._fill(max(0.01, deadline - time.monotonic()))
        line = bytes(self.buf[:i])
        del self.buf[:i + 2]
        return line

    def _exact(self, n, deadline):
        while len(self.buf) < n:
            self._fill(max(0.01, deadline - time.monotonic()))
        d = bytes(self.buf[:n])
        del self.buf[:n]
        return d

    def take_buffer(self):
        """The bytes received but not consumed yet (and forget them)."""
        d = bytes(self.buf)
        self.buf = bytearray()
        return d

    def read_response(self, method="GET", timeout=None):
        """Read one final response (1xx responses are collected in .interim).

        Raises ConnClosed if the connection closes before a complete head,
        socket.timeout if nothing completes in time.
        """
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        r = Response()
        raw = []
        while True:
            interim_raw = []
            status_line = self._line(deadline)
            interim_raw.append(status_line + b"\r\n")
            m = re.match(rb"^(HTTP/\d\.\d) (\d{3})(?: (.*))?$", status_line)
            if not m:
                raise ValueError("bad status line %r" % status_line)
            headers = []
            while True:
                line = self._line(deadline)
                interim_raw.append(line + b"\r\n")
                if line == b"":
                    break
                k, _, v = line.partition(b":")
                headers.append((k.decode("latin-1"), v.strip().decode("latin-1")))
            raw.extend(interim_raw)
            status = int(m.group(2))
            if 100 <= status < 200 and status != 101:
                r.interim.append((status, headers, b"".join(interim_raw)))
                continue
            r.version = m.group(1).decode()
            r.status = status
            r.reason = (m.group(3) or b"").decode("latin-1")
            r.headers = headers
            break
        te = ",".join(r.header_all("Transfer-Encoding")).lower()
        if method == "HEAD" or r.status in (204, 304):
            r.framing = "none"
        elif "chunked" in te:
            r.framing = "chunked"
            parts = []
            while True:
                line = self._line(deadline)
                raw.append(line + b"\r\n")
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while True:
                        t = self._line(deadline)
                        raw.append(t + b"\r\n")
                        if t == b"":
                            break
                    break
                c = self._exact(size + 2, deadline)
                raw.append(c)
                if c[-2:] != b"\r\n":
                    raise ValueError("chunk not followed by CRLF")
                parts.append(c[:-2])
            r.body = b"".join(parts)
        elif r.header("Content-Length") is not None:
            r.framing = "length"
            n = int(r.header("Content-Length"))
            r.body = self._exact(n, deadline)
            raw.append(r.body)
        else:
            r.framing = "close"
            r.body = self.read_until_close(max(0.01, deadline - time.monotonic()))
            raw.append(r.body)
        r.raw = b"".join(raw)
        r.complete = True
        return r

    def read_until_close(self, timeout=None):
        """Everything until EOF; raises socket.timeout if EOF does not come in time."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while not self.eof:
            try:
                self._fill(max(0.01, deadline - time.monotonic()))
            except ConnClosed:
                break
        return self.take_buffer()

    def closed_within(self, timeout):
        """True if the peer closes (EOF or reset) within timeout, with no more data."""
        try:
            rest = self.read_until_close(timeout)
        except (socket.timeout, TimeoutError):
            return False
        return rest == b""

    def recv_some(self, timeout):
        """Bytes available within timeout (b'' on timeout or EOF)."""
        if self.buf:
            return self.take_buffer()
        try:
            self._fill(timeout)
        except (ConnClosed, socket.timeout, TimeoutError):
            return b""
        return self.take_buffer()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def build_request(method="GET", path="/", headers=None, body=b"", version="HTTP/1.1",
                  host="127.0.0.1", content_length=True):
    """Request bytes. headers: list of (name, value); Host first unless given."""
    headers = list(headers or [])
    names = [k.lower() for k, _ in headers]
    if "host" not in names and host is not None:
        headers.insert(0, ("Host", host))
    if body and content_length and "content-length" not in names and "transfer-encoding" not in names:
        headers.append(("Content-Length", str(len(body))))
    head = "%s %s %s\r\n" % (method, path, version)
    head += "".join("%s: %s\r\n" % (k, v) for k, v in headers)
    head += "\r\n"
    return head.encode("latin-1") + body


def chunk_encode(body, sizes=(1, 7, 4096, 65536)):
    out, i, k = [], 0, 0
    while i < len(body):
        n = sizes[k % len(sizes)]
        c = body[i:i + n]
        out.append(b"%x\r\n" % len(c) + c + b"\r\n")
        i += len(c)
        k += 1
    out.append(b"0\r\n\r\n")
    return b"".join(out)


def exchange(port, data, method="GET", timeout=5):
    """Send raw bytes on a new connection and read one response."""
    with RawConn(port, timeout=timeout) as c:
        c.send(data)
        return c.read_response(method=method)


def http_request(port, method="GET", path="/echo", body=None, headers=None, timeout=10):
    """One request with http.client on a fresh connection: (status, headers dict-lower, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        conn.close()


# --------------------------------------------------------------------------
# The daemon
# --------------------------------------------------------------------------

def render_ini(sections):
    """sections: list of (section header, {key: value}) -> INI text."""
    out = []
    for name, kv in sections:
        out.append("[%s]" % name)
        for k, v in kv.items():
            if v is None:
                continue
            out.append("%s = %s" % (k, v))
        out.append("")
    return "\n".join(out)


ACCESS_RE = re.compile(r"^(?P<time>\S+) access (?P<fields>.*)$")


def parse_logfmt(s):
    return dict(m.group(1, 2) for m in re.finditer(r"(\w+)=(\S*)", s))


class Daemon:
    """A running tlslift. stderr goes to a file so tests can read the logs."""

    def __init__(self, workdir, args, port=None, name="tlslift", config_text=None, config_path=None):
        self.workdir = Path(workdir)
        self.name = name
        self.port = port
        self.config_text = config_text
        self.config_path = config_path
        self.stderr_path = self.workdir / ("%s.stderr" % name)
        self.stdout_path = self.workdir / ("%s.stdout" % name)
        self.args = [str(a) for a in args]
        self.proc = None
        # Set by a test that makes the daemon exit (signals, start-up errors):
        # the fixture then does not require a clean exit 0 at teardown.
        self.expect_exit = False
        self._err = self._out = None

    def start(self, wait=True, timeout=10):
        binary = tlslift_bin()
        if not binary.exists():
            raise RuntimeError("tlslift binary not found at %s (build it: meson setup build && "
                               "ninja -C build, or set TLSLIFT_BIN)" % binary)
        self._err = open(self.stderr_path, "ab")
        self._out = open(self.stdout_path, "ab")
        self.proc = subprocess.Popen([str(binary), *self.args], stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=self._err, cwd=str(self.workdir))
        if wait and self.port:
            self.wait_listening(timeout)
        return self

    def wait_listening(self, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("tlslift exited with %s before listening; stderr:\n%s"
                                   % (self.proc.returncode, self.stderr()))
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("tlslift did not listen on %d within %ss; stderr:\n%s"
                           % (self.port, timeout, self.stderr()))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stderr(self):
        try:
            return self.stderr_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def stdout(self):
        try:
            return self.stdout_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def stderr_tail(self, n=200):
        lines = self.stderr().splitlines()
        head = "exit code: %s\nconfig %s:\n%s\n--- stderr (last %d lines) ---\n" % (
            None if self.proc is None else self.proc.poll(), self.config_path,
            self.config_text or "(none)", n)
        return head + "\n".join(lines[-n:])

    def access_lines(self):
        out = []
        for line in self.stderr().splitlines():
            m = ACCESS_RE.match(line)
            if m:
                d = parse_logfmt(m.group("fields"))
                d["_time"] = m.group("time")
                d["_line"] = line
                out.append(d)
        return out

    def wait_access(self, count, timeout=3):
        """Wait until at least count access lines exist; return them all."""
        wait_until(lambda: len(self.access_lines()) >= count, timeout)
        return self.access_lines()

    def wait_log(self, pattern, timeout=3):
        rx = re.compile(pattern, re.M)
        return wait_until(lambda: rx.search(self.stderr()), timeout)

    def stop(self, timeout=5):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        for f in (self._err, self._out):
            if f:
                f.close()
        return self.proc.returncode

    def request(self, method="GET", path="/echo", body=None, headers=None, timeout=10):
        return http_request(self.port, method, path, body, headers, timeout)

    def assert_serving(self, upstream=None, timeout=10):
        """The daemon is alive and answers a normal request through the upstream."""
        assert self.alive(), "tlslift died; stderr:\n" + self.stderr()
        before = upstream.stats()["requests"] if upstream else None
        status, _, body = self.request("GET", "/echo/after", timeout=timeout)
        assert status == 200, "follow-up request got %s %r" % (status, body[:200])
        if upstream:
            rec = json.loads(body)
            assert rec["path"] == "/echo/after"
            assert upstream.stats()["requests"] == before + 1


def which(name):
    return shutil.which(name)


# --------------------------------------------------------------------------
# TLS from clients (old-TLS listeners): certificates from `tlslift mkcert`,
# the openssl s_client CLI, a Python TLS client over RawConn
# --------------------------------------------------------------------------

# TLS 1.0/1.1 need SHA-1 handshake signatures; OpenSSL 3 allows them at security level 0 only.
SECLEVEL0 = "@SECLEVEL=0"


class MkcertPki:
    """A local CA made by `tlslift mkcert --ca DIR` (DIR/ca.crt), and leaves issued by
    `tlslift mkcert --ca DIR NAME...` on first use: leaf(NAME, *MORE) -> (chain, key),
    the chain being DIR/NAME.crt (leaf then CA) and the key DIR/NAME.key (RSA)."""

    def __init__(self, root):
        self.dir = Path(root) / "ca"
        self.ca = self.dir / "ca.crt"
        self._leaves = {}
        self._lock = threading.Lock()

    def leaf(self, name, *more):
        with self._lock:
            if name not in self._leaves:
                r = run([str(tlslift_bin()), "mkcert", "--ca", str(self.dir), name, *more],
                        timeout=60)
                if r.returncode != 0:
                    raise RuntimeError("tlslift mkcert --ca %s %s failed (rc %d): %s%s"
                                       % (self.dir, " ".join((name,) + more), r.returncode,
                                          r.stdout, r.stderr))
                self._leaves[name] = (self.dir / (name + ".crt"), self.dir / (name + ".key"))
            return self._leaves[name]


class SClient:
    """What one `openssl s_client` run printed, picked apart."""

    def __init__(self, cmd, rc, out, err):
        self.cmd = cmd
        self.rc = rc
        self.out = out            # bytes: s_client's report, then what the server sent
        self.err = err            # text
        text = out.decode("latin-1")
        m = re.search(r"^\s*Protocol\s*:\s*(\S+)", text, re.M)
        self.protocol = m.group(1) if m else None
        m = re.search(r"^\s*Cipher\s*:\s*(\S+)", text, re.M)
        self.cipher = m.group(1) if m else None
        m = re.search(r"^(New|Reused), (\S+), Cipher is (\S+)", text, re.M)
        self.reused = bool(m and m.group(1) == "Reused")
        if m and m.group(3) not in ("(NONE)", "0000"):
            # TLS 1.3 prints no SSL-Session block until a ticket arrives: "New, TLSv1.3, ..."
            self.protocol = self.protocol or m.group(2)
            self.cipher = self.cipher or m.group(3)
        m = re.search(r"^subject=(.*)$", text, re.M)
        self.subject = m.group(1).strip() if m else None
        m = re.search(r"^Verify return code: (\d+)", text, re.M) or \
            re.search(r"^\s*Verify return code: (\d+)", text, re.M)
        self.verify = int(m.group(1)) if m else None
        self.handshake_ok = self.protocol is not None and self.cipher not in (None, "0000", "(NONE)")
        i = out.find(b"HTTP/1.")
        self.http = out[i:] if i >= 0 else b""

    def response(self):
        """The HTTP response the server sent through the tunnel: (status, headers, body)."""
        head, sep, body = self.http.partition(b"\r\n\r\n")
        if not sep:
            return None, {}, b""
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for l in lines[1:]:
            k, _, v = l.partition(":")
            headers[k.strip().lower()] = v.strip()
        if "content-length" in headers:
            body = body[:int(headers["content-length"])]
        return status, headers, body

    def describe(self):
        return "%s\nrc=%s\n--- stdout ---\n%s\n--- stderr ---\n%s" % (
            " ".join(map(str, self.cmd)), self.rc, self.out.decode("latin-1")[-3000:],
            self.err[-3000:])


def s_client(port, *args, data=b"", servername=None, cafile=None, timeout=20, sni=None):
    """Run `openssl s_client -connect 127.0.0.1:PORT -ign_eof ARGS`, with DATA on its stdin
    (sent once the handshake is done; -ign_eof then waits for the server to close). With
    SERVERNAME: sent as SNI and checked against the certificate (-verify_hostname); with SNI
    instead: sent, not checked; with neither: no SNI at all. With CAFILE: the chain must
    verify (-verify_return_error)."""
    cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-ign_eof"]
    if servername:
        cmd += ["-servername", servername, "-verify_hostname", servername]
    elif sni:
        cmd += ["-servername", sni]
    else:
        cmd += ["-noservername"]
    if cafile:
        cmd += ["-CAfile", str(cafile), "-verify_return_error"]
    cmd += [str(a) for a in args]
    r = subprocess.run(cmd, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    return SClient(cmd, r.returncode, r.stdout, r.stderr.decode("latin-1"))


def http_get_close(path, host="api.raygun.com", method="GET", body=b"", headers=()):
    """A request that asks the server to close after answering (so s_client -ign_eof ends)."""
    h = [("Host", host)] + list(headers) + [("Connection", "close")]
    return build_request(method, path, h, body)


def legacy_client_context(version, cafile=None, ciphers="DEFAULT:" + SECLEVEL0):
    """A Python client context pinned to one TLS version ("1.0" ... "1.3"); verifying the
    chain and host name against CAFILE when given."""
    v = {"1.0": ssl.TLSVersion.TLSv1, "1.1": ssl.TLSVersion.TLSv1_1,
         "1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}[version]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile:
        ctx.load_verify_locations(str(cafile))
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if v != ssl.TLSVersion.TLSv1_3:
            ctx.set_ciphers(ciphers)
        ctx.minimum_version = v
        ctx.maximum_version = v
    return ctx


def tls_conn(port, ctx, server_hostname=None, timeout=10):
    """A RawConn whose socket is wrapped in TLS with CTX (handshake done)."""
    c = RawConn(port, timeout=timeout)
    try:
        c.sock = ctx.wrap_socket(c.sock, server_hostname=server_hostname)
    except BaseException:
        c.close()
        raise
    return c


def client_hello(version="1.0", sni="api.raygun.com"):
    """The bytes of the ClientHello (all its records) a Python client pinned to VERSION
    sends, made with a MemoryBIO (no socket)."""
    ctx = legacy_client_context(version)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_side=False, server_hostname=sni)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


class GnutlsCli:
    """What one `gnutls-cli` run printed: the negotiated "(TLS1.0-X.509)-(RSA)-(AES-128-CBC)-
    (SHA1)" description, and what the server sent."""

    def __init__(self, cmd, rc, out, err):
        self.cmd, self.rc, self.out, self.err = cmd, rc, out, err
        text = out.decode("latin-1") + "\n" + err
        m = re.search(r"- Description: (\S+)", text)
        self.description = m.group(1) if m else None
        self.handshake_ok = "Handshake was completed" in text
        i = out.find(b"HTTP/1.")
        self.http = out[i:] if i >= 0 else b""

    response = SClient.response

    def describe(self):
        return "%s\nrc=%s\n--- stdout ---\n%s\n--- stderr ---\n%s" % (
            " ".join(map(str, self.cmd)), self.rc, self.out.decode("latin-1")[-3000:],
            self.err[-3000:])


def gnutls_cli(port, priority, data=b"", servername=None, cafile=None, timeout=20):
    """Run gnutls-cli against 127.0.0.1:PORT with PRIORITY, DATA on stdin. With SERVERNAME:
    sent as SNI and verified in the certificate against CAFILE."""
    cmd = ["gnutls-cli", "--priority", priority, "-p", str(port)]
    if servername:
        cmd += ["--sni-hostname", servername, "--verify-hostname", servername]
    else:
        cmd += ["--disable-sni"]
    if cafile:
        cmd += ["--x509cafile", str(cafile)]
    else:
        cmd += ["--insecure"]
    cmd += ["127.0.0.1"]
    r = subprocess.run(cmd, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    return GnutlsCli(cmd, r.returncode, r.stdout, r.stderr.decode("latin-1"))
