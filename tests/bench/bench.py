#!/usr/bin/python3
"""tlslift benchmark driver; see bench.sh for the usage.

Python 3 standard library only. Loopback only: every server binds 127.0.0.1
and every client connects to 127.0.0.1.
"""
import argparse
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOST = "127.0.0.1"
BODY = b"ok\n"  # the upstream's small fixed body
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024

# Targets of the issue (2-core machine, one worker).
TARGET_KA_CPU_RATIO = 1.0  # keep-alive req per proxy CPU-s, tlslift / nginx
TARGET_CLOSE_RATIO = 5.0  # Connection: close req/s, tlslift / stunnel
TARGET_IDLE_KIB = 8.0  # RSS per idle plain client connection
TARGET_UPLOAD_MIB = 2.0  # peak RSS growth while streaming the upload

WRK_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d bytes=%d p50_us=%d p99_us=%d max_us=%d " ..
    "connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def log(msg):
    print(msg, flush=True)


# --------------------------------------------------------------------------
# processes


class Procs:
    """Every process this script starts, stopped by PID (with descendants)."""

    def __init__(self):
        self.procs = []

    def start(self, name, argv, cpu=None, **kw):
        if cpu is not None and shutil.which("taskset"):
            argv = ["taskset", "-c", str(cpu)] + argv  # taskset execs: same PID
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, **kw)
        p.bench_name = name
        self.procs.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=10):
        if p not in self.procs:
            return
        self.procs.remove(p)
        kids = descendants(p.pid)
        if p.poll() is None:
            try:
                os.kill(p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
        deadline = time.time() + 5
        for k in kids:  # e.g. nginx workers, if the master did not reap them
            while pid_alive(k) and time.time() < deadline:
                time.sleep(0.05)
            if pid_alive(k):
                try:
                    os.kill(k, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def stop_all(self):
        for p in list(reversed(self.procs)):
            self.stop(p)


PROCS = Procs()


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def children_map():
    m = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        m.setdefault(int(rest[1]), []).append(int(d))
    return m


def descendants(pid):
    m, out, todo = children_map(), [], [pid]
    while todo:
        for c in m.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def tree(pid):
    return [pid] + descendants(pid)


def cpu_ticks(pids):
    """utime+stime (all threads) of PIDS, in clock ticks."""
    t = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
            t += int(rest[11]) + int(rest[12])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return t


def status_kib(pids, key):
    t = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith(key + ":"):
                        t += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return t


def nfds(pids):
    n = 0
    for pid in pids:
        try:
            n += len(os.listdir(f"/proc/{pid}/fd"))
        except (FileNotFoundError, ProcessLookupError):
            pass
    return n


def reset_hwm(pids):
    ok = True
    for pid in pids:
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            ok = False
    return ok


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, p, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if p.poll() is not None:
            return False
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


# --------------------------------------------------------------------------
# HTTP helpers (client side)


def read_response(sock, buf=b""):
    """Read one HTTP/1.1 response with Content-Length; (status, body, rest)."""
    while b"\r\n\r\n" not in buf:
        d = sock.recv(65536)
        if not d:
            raise ConnectionError("closed before the response head")
        buf += d
    head, _, buf = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    clen = None
    for ln in lines[1:]:
        k, _, v = ln.partition(b":")
        if k.strip().lower() == b"content-length":
            clen = int(v.strip())
    if clen is None:  # read to EOF
        while True:
            d = sock.recv(65536)
            if not d:
                break
            buf += d
        return status, buf, b""
    while len(buf) < clen:
        d = sock.recv(65536)
        if not d:
            raise ConnectionError("closed inside the response body")
        buf += d
    return status, buf[:clen], buf[clen:]


def http_get(port, path="/", close=True, timeout=10):
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        hdr = "Connection: close\r\n" if close else ""
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n{hdr}\r\n".encode())
        return read_response(s)[:2]


# --------------------------------------------------------------------------
# the origin: a small HTTP/1.1 server (sink behind the upstream nginx, or the
# whole TLS upstream when nginx is missing). Runs as `bench.py --origin ...`.


def origin_main(port, certfile, keyfile):
    import socketserver
    import ssl

    ctx = None
    if certfile:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_cert_chain(certfile, keyfile)

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            sock = self.request
            if ctx:
                sock = ctx.wrap_socket(sock, server_side=True)
            f = sock.makefile("rb", buffering=262144)
            scratch = bytearray(262144)
            while True:
                line = f.readline(65537)
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    continue
                path = line.split()[1] if len(line.split()) > 1 else b"/"
                clen, chunked, close = 0, False, False
                while True:
                    h = f.readline(65537)
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, _, v = h.partition(b":")
                    k, v = k.strip().lower(), v.strip().lower()
                    if k == b"content-length":
                        clen = int(v)
                    elif k == b"transfer-encoding" and b"chunked" in v:
                        chunked = True
                    elif k == b"connection" and v == b"close":
                        close = True
                    elif k == b"expect" and v == b"100-continue":
                        sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                got = 0
                if chunked:
                    while True:
                        size = int(f.readline(1024).split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while f.readline(65537) not in (b"\r\n", b"\n", b""):
                                pass
                            break
                        while size:
                            n = f.readinto(memoryview(scratch)[: min(size, len(scratch))])
                            if not n:
                                return
                            size -= n
                            got += n
                        f.readline(16)
                else:
                    while got < clen:
                        n = f.readinto(memoryview(scratch)[: min(clen - got, len(scratch))])
                        if not n:
                            return
                        got += n
                body = b"received=%d\n" % got if path.startswith(b"/upload") else BODY
                sock.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s\r\n%s"
                    % (len(body), b"Connection: close\r\n" if close else b"", body)
                )
                if close:
                    return

    class Server(socketserver.ThreadingTCPServer):
        allow_reuse_address = True
        daemon_threads = True
        request_queue_size = 1024

    with Server((HOST, port), Handler) as srv:
        srv.serve_forever()


# --------------------------------------------------------------------------
# setup: certificates, upstream


def run(argv, **kw):
    return subprocess.run(argv, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)


def make_certs(tmp, key):
    newkey = ["-newkey", "rsa:2048"] if key == "rsa" else ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
    ca_crt, ca_key = f"{tmp}/ca.crt", f"{tmp}/ca.key"
    leaf_crt, leaf_key, csr = f"{tmp}/leaf.crt", f"{tmp}/leaf.key", f"{tmp}/leaf.csr"
    run(["openssl", "req", "-x509", *newkey, "-nodes", "-keyout", ca_key, "-out", ca_crt, "-days", "2",
         "-subj", "/CN=tlslift bench CA", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    run(["openssl", "req", "-new", *newkey, "-nodes", "-keyout", leaf_key, "-out", csr, "-subj", "/CN=localhost"])
    with open(f"{tmp}/leaf.ext", "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
                "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
         "-out", leaf_crt, "-days", "2", "-extfile", f"{tmp}/leaf.ext"])
    return ca_crt, leaf_crt, leaf_key


NGINX_COMMON = """worker_processes 1;
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
worker_rlimit_nofile 16384;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
{body}
}}
"""

UPSTREAM_NGINX = """    server {{
        listen {host}:{port} ssl;
        ssl_certificate {crt};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.3;
        location /upload {{
            client_max_body_size 0;
            proxy_request_buffering off;
            proxy_http_version 1.1;
            proxy_pass http://{host}:{sink};
        }}
        location / {{
            default_type text/plain;
            return 200 "ok\\n";
        }}
    }}"""

PROXY_NGINX = """    upstream tlsup {{
        server {host}:{up};
        keepalive 16;
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }}
    server {{
        listen {host}:{port};
        client_max_body_size 0;
        location / {{
            proxy_pass https://tlsup;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host localhost;
            proxy_request_buffering off;
            proxy_ssl_verify on;
            proxy_ssl_verify_depth 2;
            proxy_ssl_trusted_certificate {ca};
            proxy_ssl_name localhost;
            proxy_ssl_server_name on;
            proxy_ssl_protocols TLSv1.2 TLSv1.3;
            proxy_ssl_session_reuse on;
        }}
    }}"""


def nginx_conf(d, body):
    os.makedirs(d, exist_ok=True)
    path = f"{d}/nginx.conf"
    with open(path, "w") as f:
        f.write(NGINX_COMMON.format(d=d, body=body))
    return path


def start_nginx(name, d, conf, port, cpu, nginx_bin):
    out = open(f"{d}/stdout.log", "w")
    p = PROCS.start(name, [nginx_bin, "-p", d + "/", "-e", f"{d}/error.log", "-c", conf], cpu=cpu,
                    stdout=out, stderr=subprocess.STDOUT)
    if not wait_port(port, p):
        raise RuntimeError(f"{name} did not start:\n{tail(d + '/error.log')}{tail(d + '/stdout.log')}")
    # wait for the worker
    deadline = time.time() + 5
    while len(tree(p.pid)) < 2 and time.time() < deadline:
        time.sleep(0.05)
    return p


# --------------------------------------------------------------------------
# the proxies


class Proxy:
    name = "?"

    def __init__(self, env):
        self.env = env
        self.p = None
        self.port = None

    def pids(self):
        return tree(self.p.pid)

    def stop(self):
        if self.p:
            PROCS.stop(self.p)
            self.p = None

    def errlog(self):
        return ""


class Tlslift(Proxy):
    name = "tlslift"

    def start(self, max_conn=1024, tls=None):
        """TLS: None, or (cert, key, min_version) for a listener that also
        accepts TLS (tls_cert/tls_key/tls_min_version)."""
        e = self.env
        self.n = getattr(self, "n", 0) + 1
        self.port = free_port()
        d = f"{e.tmp}/tlslift"
        os.makedirs(d, exist_ok=True)
        conf = f"{d}/tlslift-{self.n}.ini"
        # started as root (e.g. in a VM): tlslift refuses to keep root unless told
        root = "run_as_root = yes\n" if os.geteuid() == 0 else ""
        tls_keys = ""
        if tls:
            tls_keys = f"tls_cert = {tls[0]}\ntls_key = {tls[1]}\ntls_min_version = {tls[2]}\n"
        with open(conf, "w") as f:
            f.write(f"[tlslift]\n{root}log_level = warn\naccess_log = off\nca_file = {e.ca}\n"
                    f"max_connections = {max_conn}\n"
                    f"[route bench]\nlisten = {HOST}:{self.port}\nupstream = https://localhost:{e.up_port}\n"
                    f"{tls_keys}")
        self.log = f"{d}/stderr-{self.n}.log"
        self.p = PROCS.start("tlslift", [e.tlslift, "-c", conf], cpu=e.proxy_cpu,
                             stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        if not wait_port(self.port, self.p):
            raise RuntimeError(f"tlslift did not start:\n{tail(self.log)}")

    # start-up warnings the bench provokes on purpose (root in a VM, TLS 1.0)
    EXPECTED_WARN = ("running as root (run_as_root = yes)", "old TLS is weak")

    def errlog(self):
        lines = tail(self.log, 8 + len(self.EXPECTED_WARN)).splitlines(True)
        return "".join(ln for ln in lines if not any(w in ln for w in self.EXPECTED_WARN))


class NginxProxy(Proxy):
    name = "nginx"

    def start(self, max_conn=None):
        e = self.env
        self.n = getattr(self, "n", 0) + 1
        self.port = free_port()
        self.d = f"{e.tmp}/nginx-proxy-{self.n}"
        conf = nginx_conf(self.d, PROXY_NGINX.format(host=HOST, port=self.port, up=e.up_port, ca=e.ca))
        self.p = start_nginx("nginx-proxy", self.d, conf, self.port, e.proxy_cpu, e.nginx)

    def errlog(self):
        return tail(self.d + "/error.log", 8)


class Stunnel(Proxy):
    name = "stunnel"

    def start(self, max_conn=None):
        e = self.env
        self.n = getattr(self, "n", 0) + 1
        self.port = free_port()
        d = f"{e.tmp}/stunnel"
        os.makedirs(d, exist_ok=True)
        conf = f"{d}/stunnel-{self.n}.conf"
        self.log = f"{d}/stunnel-{self.n}.log"
        with open(conf, "w") as f:
            f.write(f"foreground = yes\npid =\noutput = {self.log}\ndebug = warning\n\n"
                    f"[bench]\nclient = yes\naccept = {HOST}:{self.port}\nconnect = {HOST}:{e.up_port}\n"
                    f"verifyChain = yes\nCAfile = {e.ca}\ncheckHost = localhost\nsni = localhost\n")
        self.p = PROCS.start("stunnel", [e.stunnel, conf], cpu=e.proxy_cpu,
                             stdout=open(f"{d}/stdout-{self.n}.log", "w"), stderr=subprocess.STDOUT)
        if not wait_port(self.port, self.p):
            raise RuntimeError(f"stunnel did not start:\n{tail(self.log)}")

    def errlog(self):
        return tail(self.log, 8)


# --------------------------------------------------------------------------
# scenarios


def wrk_once(env, proxy, duration, conns, close, tag):
    url = f"http://{HOST}:{proxy.port}/"
    argv = ["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--latency", "-s", env.lua]
    if close:
        argv += ["-H", "Connection: close"]
    argv.append(url)
    if env.load_cpu is not None:
        argv = ["taskset", "-c", str(env.load_cpu)] + argv
    pids = proxy.pids()
    up_pids = env.up_pids()
    c0, u0, t0 = cpu_ticks(pids), cpu_ticks(up_pids), time.time()
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cp = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                        timeout=duration + 30)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    c1, u1, t1 = cpu_ticks(proxy.pids()), cpu_ticks(up_pids), time.time()
    with open(f"{env.tmp}/wrk-{tag}.txt", "w") as f:
        f.write(" ".join(argv) + "\n" + cp.stdout)
    m = re.search(r"^BENCH (.*)$", cp.stdout, re.M)
    if not m:
        raise RuntimeError(f"wrk failed:\n{cp.stdout}")
    v = {k: int(x) for k, x in (kv.split("=") for kv in m.group(1).split())}
    secs = v["duration_us"] / 1e6
    cpu = (c1 - c0) / CLK_TCK
    wrk_cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    return {
        "rps": v["requests"] / secs,
        "rpcpu": v["requests"] / cpu if cpu > 0 else float("nan"),
        "cpu_pct": 100.0 * cpu / (t1 - t0),
        "core1_pct": 100.0 * ((u1 - u0) / CLK_TCK + wrk_cpu) / (t1 - t0),
        "p50_ms": v["p50_us"] / 1000.0,
        "p99_ms": v["p99_us"] / 1000.0,
        "requests": v["requests"],
        "non2xx": v["status"],
        "errors": v["connect"] + v["read"] + v["write"] + v["timeout"],
        "errdetail": f"connect {v['connect']}, read {v['read']}, write {v['write']}, timeout {v['timeout']}",
    }


def median_result(runs):
    out = {}
    for k in runs[0]:
        if isinstance(runs[0][k], (int, float)):
            out[k] = statistics.median(r[k] for r in runs)
            if k in ("non2xx", "errors", "requests"):
                out[k] = sum(r[k] for r in runs)
        else:
            out[k] = runs[-1][k]
    return out


def scenario_wrk(env, proxies, close):
    """One wrk scenario for all PROXIES: each started fresh and warmed up,
    then the measured runs round-robin over the proxies (repeat times), so a
    drift in the machine's load hits them alike. Returns {name: result}."""
    scen = "close" if close else "keepalive"
    conns = env.args.connections
    runs, out, live = {}, {}, []
    try:
        for px in proxies:
            try:
                px.start()
                # warm-up: fill the pools and session caches (not measured)
                wrk_once(env, px, 1, conns, close, f"{scen}-{px.name}-warmup")
                live.append(px)
                runs[px.name] = []
            except (RuntimeError, subprocess.SubprocessError, OSError) as ex:
                log(f"  {px.name} failed: {ex}")
                px.stop()
        for i in range(env.args.repeat):
            for px in live:
                log(f"[{scen}] {px.name} run {i + 1}/{env.args.repeat} ...")
                try:
                    runs[px.name].append(wrk_once(env, px, env.args.duration, conns, close,
                                                  f"{scen}-{px.name}-{i}"))
                except (RuntimeError, subprocess.SubprocessError, OSError) as ex:
                    log(f"  {px.name} failed: {ex}")
        for px in live:
            if not runs[px.name]:
                continue
            res = median_result(runs[px.name])
            res["runs"] = runs[px.name]
            if env.args.perf:
                res["pstat"] = perf_stat(env, px, conns, close)
                if px.name == "tlslift" and not close:
                    res["perf"] = perf_profile(env, px, conns)
            if px.p.poll() is not None:
                res["note"] = f"{px.name} died (exit {px.p.returncode})"
            el = px.errlog().strip()
            if el:
                res["log"] = el
            out[px.name] = res
    finally:
        for px in proxies:
            px.stop()
    return out


def perf_stat(env, proxy, conns, close):
    """One extra (unmeasured) run under perf stat: syscalls and context
    switches per request."""
    if not shutil.which("perf"):
        return None
    out = f"{env.tmp}/perf-stat-{proxy.name}-{int(close)}.txt"
    dur = env.args.duration
    ps = subprocess.Popen(["perf", "stat", "-x", ",", "-e", "raw_syscalls:sys_enter,context-switches",
                           "-p", ",".join(map(str, proxy.pids())), "-o", out, "--", "sleep", str(dur + 1)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ps.bench_name = "perf"
    PROCS.procs.append(ps)
    time.sleep(0.3)
    try:
        r = wrk_once(env, proxy, dur, conns, close, f"perfstat-{proxy.name}-{int(close)}")
    finally:
        try:
            ps.wait(dur + 20)
        except subprocess.TimeoutExpired:
            pass
        PROCS.stop(ps, sig=signal.SIGINT)
    vals = {}
    try:
        with open(out) as f:
            for ln in f:
                parts = ln.strip().split(",")
                if len(parts) > 2 and parts[0].replace(".", "").isdigit():
                    vals[parts[2]] = float(parts[0])
    except OSError:
        return None
    n = max(r["requests"], 1)
    sc = vals.get("raw_syscalls:sys_enter")
    cs = vals.get("context-switches")
    if sc is None:
        return None
    return {"syscalls_per_req": sc / n, "cswitch_per_req": (cs or 0) / n}


def perf_profile(env, proxy, conns):
    if not shutil.which("perf"):
        return "perf not installed: skipped"
    data = f"{env.tmp}/perf.data"
    dur = env.args.duration
    perf = subprocess.Popen(["perf", "record", "-F", "1999", "-g", "-p", str(proxy.p.pid), "-o", data, "--",
                             "sleep", str(dur + 1)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    perf.bench_name = "perf"
    PROCS.procs.append(perf)
    time.sleep(0.3)
    try:
        wrk_once(env, proxy, dur, conns, False, "keepalive-tlslift-perf")
    finally:
        try:
            perf.wait(dur + 20)
        except subprocess.TimeoutExpired:
            pass
        PROCS.stop(perf, sig=signal.SIGINT)

    def rep(sort, limit, n):
        cp = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", sort,
                             "-g", "none", "--percent-limit", str(limit)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, timeout=120)
        lines = [re.sub(r"(\s+-)+\s*$", "", ln) for ln in cp.stdout.splitlines()
                 if ln.strip() and not ln.startswith("#")]
        return lines[:n]

    out = ["  by object:"] + rep("dso", 0.5, 10)
    out += ["  top symbols:"] + rep("dso,symbol", 0.5, 20)
    user = [ln for ln in rep("dso,symbol", 0.1, 400) if "[k]" not in ln]
    out += ["  top user-space symbols:"] + user[:15]
    return "\n".join(out)


def scenario_idle(env, proxy):
    n = env.args.idle_conns
    proxy.start(max_conn=n + 64)
    socks = []
    try:
        st, body = http_get(proxy.port, "/")  # warm-up request
        time.sleep(0.3)
        pids = proxy.pids()
        fd0 = nfds(pids)
        before = status_kib(pids, "VmRSS")
        for _ in range(n):
            socks.append(socket.create_connection((HOST, proxy.port), timeout=10))
        deadline = time.time() + 10
        while nfds(proxy.pids()) < fd0 + n and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        pids = proxy.pids()
        after = status_kib(pids, "VmRSS")
        accepted = nfds(pids) - fd0
        # the same connections, each after one keep-alive request
        bad = 0
        for s in socks:
            s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            try:
                if read_response(s)[0] != 200:
                    bad += 1
            except (OSError, ValueError, IndexError):
                bad += 1
        time.sleep(0.5)
        after_req = status_kib(proxy.pids(), "VmRSS")
        res = {
            "warmup_status": st,
            "before_kib": before,
            "after_kib": after,
            "per_conn_kib": (after - before) / n,
            "per_conn_req_kib": (after_req - before) / n,
            "fds": accepted,
            "bad": bad,
        }
        el = proxy.errlog().strip()
        if el:
            res["log"] = el
        return res
    finally:
        for s in socks:
            s.close()
        proxy.stop()


class Sampler(threading.Thread):
    def __init__(self, pids):
        super().__init__(daemon=True)
        self.pids, self.peak, self.stop_ev = pids, 0, threading.Event()

    def run(self):
        while not self.stop_ev.is_set():
            self.peak = max(self.peak, status_kib(self.pids, "VmRSS"))
            time.sleep(0.005)


def upload_curl(port, nbytes, tmp):
    cmd = (f"head -c {nbytes} /dev/zero | curl -sS --max-time 120 -T - -o {tmp}/upload-curl.out "
           f"-w '%{{http_code}}' http://{HOST}:{port}/upload")
    cp = subprocess.run(["bash", "-c", cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=150)
    try:
        with open(f"{tmp}/upload-curl.out", "rb") as f:
            body = f.read()
    except OSError:
        body = b""
    return cp.stdout.strip(), body


def upload_python(port, nbytes):
    with socket.create_connection((HOST, port), timeout=60) as s:
        s.sendall(f"PUT /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: {nbytes}\r\n"
                  f"Content-Type: application/octet-stream\r\nConnection: close\r\n\r\n".encode())
        chunk = memoryview(bytes(262144))
        left = nbytes
        while left:
            n = min(left, len(chunk))
            s.sendall(chunk[:n])
            left -= n
        st, body, _ = read_response(s)
        return str(st), body


def scenario_upload(env, proxy, how):
    nbytes = env.args.upload_mib * 1024 * 1024
    proxy.start()
    try:
        http_get(proxy.port, "/")  # warm-up request
        time.sleep(0.3)
        pids = proxy.pids()
        before = status_kib(pids, "VmRSS")
        hwm_reset = reset_hwm(pids)
        sampler = Sampler(pids)
        sampler.start()
        c0 = cpu_ticks(pids)
        t0 = time.time()
        try:
            if how == "curl":
                st, body = upload_curl(proxy.port, nbytes, env.tmp)
            else:
                st, body = upload_python(proxy.port, nbytes)
        except (OSError, ValueError, IndexError, subprocess.TimeoutExpired) as ex:
            st, body = f"error: {ex}", b""
        secs = time.time() - t0
        cpu = (cpu_ticks(pids) - c0) / CLK_TCK
        sampler.stop_ev.set()
        sampler.join()
        hwm = status_kib(pids, "VmHWM")
        peak = max(hwm if hwm_reset else 0, sampler.peak)
        m = re.search(rb"received=(\d+)", body)
        got = int(m.group(1)) if m else None
        res = {
            "status": st,
            "received": got,
            "complete": got == nbytes,
            "before_kib": before,
            "peak_kib": peak,
            "growth_mib": (peak - before) / 1024.0,
            "mib_s": env.args.upload_mib / secs if secs > 0 else 0,
            "secs": secs,
            "cpu_s": cpu,
            "hwm_reset": hwm_reset,
        }
        el = proxy.errlog().strip()
        if el:
            res["log"] = el
        return res
    finally:
        proxy.stop()


# --------------------------------------------------------------------------
# TLS 1.0 from legacy clients (issue 3): full and resumed TLS 1.0 handshakes
# per second against tlslift's TLS listener (BearSSL) and against
# `openssl s_server -tls1` on the same RSA leaf, chain and suite; and the
# latency a TLS 1.0 keep-alive request adds over a plain one on the same
# tlslift listener.

TLS10_SUITES = "ECDHE-RSA-AES128-SHA,AES128-SHA"


class SServer:
    """openssl s_server -tls1 -www: the same leaf and chain as tlslift's
    listener, its internal session cache on (resumption by session ID), and
    session tickets off, as BearSSL has none."""

    name = "s_server"

    def __init__(self, env, crt, chain, key, suites):
        self.env, self.crt, self.chain, self.key, self.suites = env, crt, chain, key, suites
        self.p = None
        self.port = None

    def start(self):
        e = self.env
        self.port = free_port()
        self.log = f"{e.tmp}/tls10/s_server.log"
        argv = ["openssl", "s_server", "-accept", f"{HOST}:{self.port}", "-tls1", "-cert", self.crt,
                "-cert_chain", self.chain, "-key", self.key, "-cipher", ":".join(self.suites) + ":@SECLEVEL=0",
                "-no_ticket", "-www", "-quiet"]
        self.p = PROCS.start("s_server", argv, cpu=e.proxy_cpu, stdout=open(self.log, "w"),
                             stderr=subprocess.STDOUT)
        if not wait_port(self.port, self.p):
            raise RuntimeError(f"openssl s_server did not start:\n{tail(self.log)}")

    def pids(self):
        return tree(self.p.pid)

    def stop(self):
        if self.p:
            PROCS.stop(self.p)
            self.p = None


def stime_usable():
    """openssl s_time with -new, -reuse, -tls1 and -cipher?"""
    try:
        cp = subprocess.run(["openssl", "s_time", "-help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return all(re.search(rf"^\s*{re.escape(f)}\s", cp.stdout, re.M) for f in ("-new", "-reuse", "-tls1", "-cipher"))


def tls10_client_ctx(suite, cafile=None):
    """A Python ssl client context limited to TLS 1.0 and SUITE (SECLEVEL=0:
    OpenSSL 3 refuses TLS 1.0's SHA-1 signatures at its default level)."""
    import ssl
    import warnings
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLSv1 is deprecated: that is the point
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1
    ctx.set_ciphers(f"{suite}:@SECLEVEL=0")
    ctx.options |= ssl.OP_NO_TICKET  # resume by session ID, as BearSSL does
    if cafile:
        ctx.load_verify_locations(cafile)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def py_handshake(ctx, port, session):
    """One TLS 1.0 handshake, no request; (resumed, version, session)."""
    raw = socket.create_connection((HOST, port), timeout=10)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # else close_notify waits on delayed ACKs
    try:
        s = ctx.wrap_socket(raw, session=session)
    except BaseException:
        raw.close()
        raise
    try:
        reused, ver, sess = s.session_reused, s.version(), s.session
        try:
            s.unwrap()  # close_notify both ways: after an unclean close s_server drops the session
        except (OSError, ValueError):
            pass
        return reused, ver, sess
    finally:
        s.close()


def handshakes_python(port, suite, reuse, secs, max_n=1000000):
    """Bounded loop: up to MAX_N handshakes, for SECS seconds at most."""
    ctx = tls10_client_ctx(suite)
    saved = py_handshake(ctx, port, None)[2] if reuse else None  # unmeasured
    n = resumed = tls1 = 0
    t_end = time.monotonic() + secs
    while n < max_n and time.monotonic() < t_end:
        r, ver, sess = py_handshake(ctx, port, saved)
        n += 1
        resumed += bool(r)
        tls1 += ver == "TLSv1"
        if reuse and not r:
            saved = sess
    return n, resumed, tls1


def handshakes_stime(env, port, suite, reuse, secs, tag):
    """openssl s_time without -www: handshake, then close, no request.
    Its progress marks: 't' a new TLS 1.0 session, 'r' a resumed one."""
    argv = ["openssl", "s_time", "-connect", f"{HOST}:{port}", "-reuse" if reuse else "-new",
            "-time", str(secs), "-tls1", "-cipher", f"{suite}:@SECLEVEL=0"]
    if env.load_cpu is not None:
        argv = ["taskset", "-c", str(env.load_cpu)] + argv
    cp = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=secs + 30)
    out = cp.stdout.decode(errors="replace")
    with open(f"{env.tmp}/tls10/s_time-{tag}.txt", "w") as f:
        f.write(" ".join(argv) + "\n" + out)
    counts = re.findall(r"^(\d+) connections in [\d.]+s;", out, re.M)
    if not counts:
        raise RuntimeError("s_time failed: " + " ".join(out.split())[-400:])
    marks = "".join(ln.strip() for ln in out.splitlines() if re.fullmatch(r"[rt3*]+", ln.strip()))
    return int(counts[-1]), marks.count("r"), marks.count("t")


def hs_once(env, client, server, suite, reuse, secs, tag):
    """One measured handshake run against SERVER (has .port and .pids())."""
    pids = server.pids()
    c0, t0 = cpu_ticks(pids), time.monotonic()
    who = resource.RUSAGE_CHILDREN if client == "s_time" else resource.RUSAGE_SELF
    r0 = resource.getrusage(who)
    if client == "s_time":
        n, resumed, tls1 = handshakes_stime(env, server.port, suite, reuse, secs, tag)
    else:
        n, resumed, tls1 = handshakes_python(server.port, suite, reuse, secs)
    r1 = resource.getrusage(who)
    wall = time.monotonic() - t0
    cpu = (cpu_ticks(server.pids()) - c0) / CLK_TCK
    cli = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    if n == 0:
        raise RuntimeError("no handshake completed")
    return {
        "n": n,
        "hs_s": n / wall,
        "hs_cpu": n / cpu if cpu > 0 else float("nan"),
        "cpu_pct": 100.0 * cpu / wall,
        "client_pct": 100.0 * cli / wall,
        "resumed_pct": 100.0 * resumed / n,
        "tls1_pct": 100.0 * (resumed + tls1) / n if client == "s_time" else 100.0 * tls1 / n,
    }


def tls_probe(port, suite):
    """openssl s_client once: the ECDHE group and the handshake's size."""
    try:
        cp = subprocess.run(["openssl", "s_client", "-connect", f"{HOST}:{port}", "-tls1", "-cipher",
                             f"{suite}:@SECLEVEL=0", "-no_ticket"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as ex:
        return f"s_client failed: {ex}"
    out = cp.stdout
    parts = []
    m = re.search(r"Protocol\s*:\s*(\S+)", out)
    parts.append(m.group(1) if m else "no TLS session")
    m = re.search(r"Cipher is (\S+)", out)
    if m:
        parts.append(m.group(1))
    m = re.search(r"Server Temp Key: ([^\n]+)", out)
    if m:
        parts.append("ECDHE " + m.group(1).strip())
    parts.append(f"{len(re.findall(r'^ *[0-9]+ s:', out, re.M)) or '?'} certs")
    m = re.search(r"handshake has read (\d+) bytes and written (\d+)", out)
    if m:
        parts.append(f"server sent {m.group(1)} B")
    return ", ".join(parts)


def cpu_ns(pids):
    """On-CPU time of PIDS (all threads) in ns from /proc/PID/task/*/schedstat,
    finer than the clock ticks of /proc/PID/stat; None if not available."""
    t = 0
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except (FileNotFoundError, ProcessLookupError):
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    t += int(f.read().split()[0])
            except (FileNotFoundError, ProcessLookupError):
                pass
            except (OSError, ValueError, IndexError):
                return None
    return t


def pct(xs, q):
    """Nearest-rank percentile of the sorted list XS."""
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, max(0, int(round(q / 100.0 * len(xs) + 0.5)) - 1))]


def tls10_latency(env, proxy, cafile, suite, n, block=10, limit_s=60.0):
    """N sequential keep-alive GETs on one TLS 1.0 connection and N on one
    plain connection, both to tlslift's TLS listener, in alternating blocks
    of BLOCK requests (so a drift in the machine's load hits both alike);
    bounded by LIMIT_S seconds. Latency per request is sendall to the end of
    the response, client side (Python, CPU 1)."""
    ctx = tls10_client_ctx(suite, cafile)
    req = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
    socks, bufs = {}, {"plain": b"", "tls": b""}
    try:
        socks["plain"] = socket.create_connection((HOST, proxy.port), timeout=10)
        raw = socket.create_connection((HOST, proxy.port), timeout=10)
        socks["tls"] = ctx.wrap_socket(raw, server_hostname="localhost")
        for s in socks.values():
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        version, cipher = socks["tls"].version(), socks["tls"].cipher()[0]
        lat = {"plain": [], "tls": []}
        cpu = {"plain": 0.0, "tls": 0.0}  # seconds
        use_ns = cpu_ns(proxy.pids()) is not None
        bad = {"plain": 0, "tls": 0}

        def one(kind):
            t0 = time.perf_counter_ns()
            socks[kind].sendall(req)
            st, body, bufs[kind] = read_response(socks[kind], bufs[kind])
            dt = time.perf_counter_ns() - t0
            if st != 200 or body != BODY:
                bad[kind] += 1
            return dt

        for _ in range(200):  # warm-up: the upstream connection, caches
            one("plain")
            one("tls")
        bad = {"plain": 0, "tls": 0}
        deadline = time.monotonic() + limit_s
        rnd = 0
        while min(len(v) for v in lat.values()) < n and time.monotonic() < deadline:
            order = ("plain", "tls") if rnd % 2 == 0 else ("tls", "plain")
            rnd += 1
            for kind in order:
                k = min(block, n - len(lat[kind]))
                pids = proxy.pids()
                c0 = cpu_ns(pids) if use_ns else cpu_ticks(pids)
                for _ in range(k):
                    lat[kind].append(one(kind))
                c1 = cpu_ns(pids) if use_ns else cpu_ticks(pids)
                cpu[kind] += (c1 - c0) / 1e9 if use_ns else (c1 - c0) / CLK_TCK
    finally:
        for s in socks.values():
            s.close()
    res = {"version": version, "cipher": cipher, "limit_s": limit_s, "block": block,
           "cpu_src": "schedstat" if use_ns else "stat ticks"}
    for kind, xs in lat.items():
        xs = sorted(x / 1000.0 for x in xs)
        res[kind] = {
            "n": len(xs),
            "p50_us": pct(xs, 50),
            "p99_us": pct(xs, 99),
            "mean_us": statistics.fmean(xs) if xs else float("nan"),
            "cpu_us": 1e6 * cpu[kind] / len(xs) if xs else float("nan"),
            "bad": bad[kind],
        }
    return res


def scenario_tls10(env):
    args = env.args
    d = f"{env.tmp}/tls10"
    cp = run([env.tlslift, "mkcert", "--ca", d, "localhost"])
    crt, key, ca = f"{d}/localhost.crt", f"{d}/localhost.key", f"{d}/ca.crt"
    if not all(os.path.exists(x) for x in (crt, key, ca)):
        raise RuntimeError("tlslift mkcert did not write the leaf: " + cp.stdout.decode(errors="replace"))
    txt = run(["openssl", "x509", "-in", crt, "-noout", "-text"]).stdout.decode(errors="replace")
    m = re.search(r"Public Key Algorithm: (\S+).*?Public-Key: \((\d+) bit\)", txt, re.S)
    leaf = f"{m.group(1).replace('Encryption', '').upper()} {m.group(2)}" if m else "?"
    suites = [x for x in args.tls10_suites.split(",") if x]
    client = args.tls10_client
    if client == "auto":
        client = "s_time" if stime_usable() else "python"
    out = {"leaf": leaf, "client": client, "suites": suites, "hs": {}, "probe": {}, "notes": [], "servers": []}
    px = Tlslift(env)
    ss = SServer(env, crt, ca, key, suites)
    try:
        servers = []
        try:
            px.start(tls=(crt, key, "1.0"))
            servers.append(px)
        except RuntimeError as ex:
            out["notes"].append(f"tlslift: {ex}")
        try:
            ss.start()
            servers.append(ss)
        except (RuntimeError, OSError) as ex:
            out["notes"].append(f"s_server: {ex}")
        out["servers"] = [s.name for s in servers]
        for s in servers:
            for suite in suites:
                out["probe"][(s.name, suite)] = tls_probe(s.port, suite)
        for s in servers:  # warm-up, not measured
            try:
                hs_once(env, client, s, suites[0], False, 1, f"{s.name}-warmup")
            except (RuntimeError, OSError, subprocess.SubprocessError) as ex:
                out["notes"].append(f"{s.name} warm-up: {ex}")
        runs = {}
        for i in range(args.repeat):
            for suite in suites:
                for reuse in (False, True):
                    for s in servers:
                        mode = "resumed" if reuse else "full"
                        log(f"[tls10] {s.name} {suite} {mode} handshakes ({client}), run {i + 1}/{args.repeat} ...")
                        try:
                            r = hs_once(env, client, s, suite, reuse, args.duration, f"{s.name}-{suite}-{mode}-{i}")
                            runs.setdefault((suite, reuse, s.name), []).append(r)
                        except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as ex:
                            log(f"  failed: {ex}")
                            out["notes"].append(f"{s.name} {suite} {mode}: {ex}")
        for k, rs in runs.items():
            res = median_result(rs)
            res["runs"] = rs
            out["hs"][k] = res
        if px.p:
            log(f"[tls10] tlslift keep-alive GET, TLS 1.0 ({suites[0]}) vs plain, "
                f"{args.tls10_requests} requests each ...")
            try:
                out["lat"] = tls10_latency(env, px, ca, suites[0], args.tls10_requests)
            except (OSError, ValueError, IndexError, ConnectionError) as ex:
                log(f"  failed: {ex}")
                out["notes"].append(f"latency: {ex}")
        for s in servers:
            if s.p and s.p.poll() is not None:
                out["notes"].append(f"{s.name} died (exit {s.p.returncode})")
        if px.p:
            el = px.errlog().strip()
            if el:
                out["notes"].append("tlslift log tail:\n    " + el.replace("\n", "\n    "))
    finally:
        px.stop()
        ss.stop()
    return out


def report_tls10(env, t):
    args = env.args
    log("-" * 100)
    how = (f"openssl s_time -new/-reuse -time {args.duration}, handshake then close" if t["client"] == "s_time"
           else f"Python ssl loop for {args.duration} s, handshake then close_notify")
    log(f"TLS 1.0 handshakes: {t['leaf']} leaf from tlslift mkcert (+ CA in the chain); {how}, no request;")
    log("  server on CPU 0, client on CPU 1; s_server: -tls1 -no_ticket -www, session-ID cache (as BearSSL)")
    log(f"{'suite':<22}{'handshake':<10}{'server':<10}{'hs/s':>9}{'hs/CPU-s':>10}{'server CPU':>11}"
        f"{'client CPU':>11}{'resumed':>9}{'TLS 1.0':>9}")
    for suite in t["suites"]:
        for reuse in (False, True):
            for name in ("tlslift", "s_server"):
                r = t["hs"].get((suite, reuse, name))
                if not r:
                    continue
                log(f"{suite:<22}{'resumed' if reuse else 'full':<10}{name:<10}{fmt(r['hs_s']):>9}"
                    f"{fmt(r['hs_cpu']):>10}{fmt(r['cpu_pct']) + '%':>11}{fmt(r['client_pct']) + '%':>11}"
                    f"{fmt(r['resumed_pct']) + '%':>9}{fmt(r['tls1_pct']) + '%':>9}")
    ratios = []
    for suite in t["suites"]:
        for reuse in (False, True):
            a, b = t["hs"].get((suite, reuse, "tlslift")), t["hs"].get((suite, reuse, "s_server"))
            if a and b:
                ratios.append(f"{suite} {'resumed' if reuse else 'full'} {a['hs_s'] / b['hs_s']:.2f}x hs/s, "
                              f"{a['hs_cpu'] / b['hs_cpu']:.2f}x per CPU-s")
    if ratios:
        log("tlslift / s_server: " + "; ".join(ratios[:2]))
        for i in range(2, len(ratios), 2):
            log("                    " + "; ".join(ratios[i:i + 2]))
    lat = t.get("lat")
    if lat:
        p, s = lat["plain"], lat["tls"]
        log("-" * 100)
        log(f"keep-alive GET through tlslift, TLS 1.0 ({lat['version']}, {lat['cipher']}) vs plain HTTP on the same "
            f"listener: N sequential")
        log(f"  on one connection each (alternating blocks of {lat['block']}, Python client on CPU 1, "
            f"limit {lat['limit_s']:g} s; proxy CPU from {lat['cpu_src']})")
        log(f"{'connection':<22}{'requests':>10}{'p50 us':>10}{'p99 us':>10}{'mean us':>10}{'proxy CPU us/req':>18}"
            f"{'bad':>6}")
        for label, r in (("plain HTTP", p), ("TLS 1.0", s)):
            log(f"{label:<22}{r['n']:>10}{fmt(r['p50_us'], 1):>10}{fmt(r['p99_us'], 1):>10}{fmt(r['mean_us'], 1):>10}"
                f"{fmt(r['cpu_us'], 1):>18}{r['bad']:>6}")
        log(f"{'added by TLS 1.0':<22}{'':>10}{fmt(s['p50_us'] - p['p50_us'], 1):>10}"
            f"{fmt(s['p99_us'] - p['p99_us'], 1):>10}{fmt(s['mean_us'] - p['mean_us'], 1):>10}"
            f"{fmt(s['cpu_us'] - p['cpu_us'], 1):>18}")
        log("  (latency is client-side: it includes the Python client's own TLS 1.0 work; p99 and proxy CPU/req")
        log("  follow the machine's load, p50 is the steadiest figure)")
    return [f"tls10 {name} {suite}: {desc}" for (name, suite), desc in t["probe"].items()] + \
        [f"tls10 {n}" for n in t["notes"]] + \
        [f"tls10 {suite} {'resumed' if reuse else 'full'} {name}: runs hs/s "
         + ", ".join(fmt(x["hs_s"]) for x in r["runs"]) + "; hs/CPU-s " + ", ".join(fmt(x["hs_cpu"]) for x in r["runs"])
         for (suite, reuse, name), r in t["hs"].items() if len(r["runs"]) > 1]


# --------------------------------------------------------------------------


class Env:
    pass


def main():
    ap = argparse.ArgumentParser(prog="tests/bench/bench.sh", description="tlslift benchmark; see the top of tests/bench/bench.sh")
    ap.add_argument("-d", "--duration", type=int, default=5)
    ap.add_argument("-c", "--connections", type=int, default=16)
    ap.add_argument("-n", "--idle-conns", type=int, default=1000)
    ap.add_argument("--upload-mib", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--scenarios", default="keepalive,close,idle,upload,tls10")
    ap.add_argument("--proxies", default="tlslift,nginx,stunnel")
    ap.add_argument("--tlslift", default=os.path.join(REPO, "build", "daemon", "tlslift"))
    ap.add_argument("--nginx", help="nginx binary ('none': as if not installed)")
    ap.add_argument("--stunnel", help="stunnel binary ('none': as if not installed)")
    ap.add_argument("--key", choices=["ec", "rsa"], default="ec")
    ap.add_argument("--tls10-suites", default=TLS10_SUITES)
    ap.add_argument("--tls10-requests", type=int, default=5000)
    ap.add_argument("--tls10-client", choices=["auto", "s_time", "python"], default="auto")
    ap.add_argument("--perf", action="store_true")
    ap.add_argument("--keep-tmp", action="store_true")
    ap.add_argument("--origin", nargs=3, metavar=("PORT", "CERT", "KEY"), help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.origin:
        port, cert, key = args.origin
        origin_main(int(port), cert or None, key or None)
        return 0

    scen = set(args.scenarios.split(","))
    want = args.proxies.split(",")
    env = Env()
    env.args = args

    # CPUs: the proxy on 0, everything else on 1
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 2 and shutil.which("taskset"):
        env.proxy_cpu, env.load_cpu = cpus[0], cpus[1]
        os.sched_setaffinity(0, {env.load_cpu})
    else:
        env.proxy_cpu = env.load_cpu = None
        log("fewer than 2 CPUs (or no taskset): not pinning")

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want_fds = args.idle_conns * 3 + 256
    if hard != resource.RLIM_INFINITY and hard < want_fds:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want_fds, want_fds))
        except (ValueError, OSError):
            pass
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    for tool in ("openssl",):
        if not shutil.which(tool):
            log(f"{tool} not installed: cannot run")
            return 1
    if not os.access(args.tlslift, os.X_OK):
        log(f"tlslift binary not found at {args.tlslift}: build it (meson setup build && ninja -C build) or pass --tlslift")
        return 1
    env.tlslift = args.tlslift
    env.nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    env.stunnel = shutil.which("stunnel4") or shutil.which("stunnel") or \
        next((p for p in ("/usr/bin/stunnel4", "/usr/bin/stunnel") if os.access(p, os.X_OK)), None)
    if args.nginx:
        env.nginx = None if args.nginx == "none" else args.nginx
    if args.stunnel:
        env.stunnel = None if args.stunnel == "none" else args.stunnel
    have_wrk = shutil.which("wrk") is not None
    have_curl = shutil.which("curl") is not None

    proxies = []
    for name in want:
        if name == "tlslift":
            proxies.append(Tlslift(env))
        elif name == "nginx":
            if env.nginx:
                proxies.append(NginxProxy(env))
            else:
                log("nginx not installed: skipped")
        elif name == "stunnel":
            if env.stunnel:
                proxies.append(Stunnel(env))
            else:
                log("stunnel not installed: skipped")
    if not have_wrk and scen & {"keepalive", "close"}:
        log("wrk not installed: skipped the keep-alive and Connection: close scenarios")
        scen -= {"keepalive", "close"}

    env.tmp = tempfile.mkdtemp(prefix="tlslift-bench-")
    env.lua = f"{env.tmp}/report.lua"
    with open(env.lua, "w") as f:
        f.write(WRK_LUA)

    def on_signal(sig, frm):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        return run_all(env, scen, proxies, have_curl)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        PROCS.stop_all()
        if args.keep_tmp:
            log(f"temp dir kept: {env.tmp}")
        else:
            shutil.rmtree(env.tmp, ignore_errors=True)


def run_all(env, scen, proxies, have_curl):
    args = env.args
    env.ca, crt, key = make_certs(env.tmp, args.key)
    env.up_port = free_port()
    sink_port = free_port()
    me = os.path.abspath(__file__)
    if env.nginx:
        sink = PROCS.start("sink", [sys.executable, me, "--origin", str(sink_port), "", ""], cpu=env.load_cpu,
                           stdout=open(f"{env.tmp}/sink.log", "w"), stderr=subprocess.STDOUT)
        if not wait_port(sink_port, sink):
            raise RuntimeError("upload sink did not start:\n" + tail(f"{env.tmp}/sink.log"))
        d = f"{env.tmp}/nginx-upstream"
        conf = nginx_conf(d, UPSTREAM_NGINX.format(host=HOST, port=env.up_port, crt=crt, key=key, sink=sink_port))
        up = start_nginx("nginx-upstream", d, conf, env.up_port, env.load_cpu, env.nginx)
        upstream_desc = "nginx, TLS 1.3 only, worker_processes 1"
    else:
        up = PROCS.start("origin", [sys.executable, me, "--origin", str(env.up_port), crt, key], cpu=env.load_cpu,
                         stdout=open(f"{env.tmp}/origin.log", "w"), stderr=subprocess.STDOUT)
        if not wait_port(env.up_port, up):
            raise RuntimeError("python upstream did not start:\n" + tail(f"{env.tmp}/origin.log"))
        upstream_desc = "Python TLS 1.3 server (nginx missing: throughput is bounded by it)"
    env.up_pids = lambda: tree(up.pid)

    tv = subprocess.run([env.tlslift, "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                        text=True).stdout.split("\n")[0]
    log(f"tlslift bench: {tv} ({env.tlslift})")
    log(f"upstream: {upstream_desc}, {args.key} key, https://localhost:{env.up_port}")
    log(f"pinning: proxy on CPU {env.proxy_cpu}; wrk, upstream, clients on CPU {env.load_cpu}")
    log(f"load average: {' '.join(open('/proc/loadavg').read().split()[:3])} (before)")
    log(f"proxies: {', '.join(p.name for p in proxies)}; wrk -t1 -c{args.connections} -d{args.duration}s"
        f" x{args.repeat}; temp dir {env.tmp}")
    log("")

    results = {}
    for sc, close in (("keepalive", False), ("close", True)):
        if sc not in scen:
            continue
        for name, res in scenario_wrk(env, proxies, close).items():
            results[(sc, name)] = res
    if "idle" in scen:
        for px in proxies:
            log(f"[idle] {px.name}: {args.idle_conns} idle connections ...")
            try:
                results[("idle", px.name)] = scenario_idle(env, px)
            except (RuntimeError, OSError, ValueError, IndexError) as ex:
                log(f"  failed: {ex}")
                px.stop()
    if "upload" in scen:
        hows = (["curl"] if have_curl else []) + ["python"]
        if not have_curl:
            log("curl not installed: chunked upload skipped")
        for px in proxies:
            for how in hows:
                log(f"[upload] {px.name}: {args.upload_mib} MiB via {how} ...")
                try:
                    results[("upload-" + how, px.name)] = scenario_upload(env, px, how)
                except (RuntimeError, OSError, ValueError) as ex:
                    log(f"  failed: {ex}")
                    px.stop()
    if "tls10" in scen:
        log("[tls10] TLS 1.0 handshakes and keep-alive latency: tlslift vs openssl s_server ...")
        try:
            results[("tls10", "all")] = scenario_tls10(env)
        except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as ex:
            log(f"  failed: {ex}")
    report(env, results, proxies)
    return 0


def fmt(x, nd=0):
    if x is None:
        return "-"
    if isinstance(x, float) and x != x:
        return "nan"
    return f"{x:,.{nd}f}"


def report(env, results, proxies):
    args = env.args
    log("")
    log("=" * 100)
    log(f"{'scenario':<22}{'proxy':<9}{'req/s':>10}{'req/CPU-s':>11}{'proxy CPU':>10}{'core1':>7}"
        f"{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}{'errors':>8}")
    log("-" * 100)
    notes = []
    for sc, label in (("keepalive", "keep-alive GET"), ("close", "Connection: close")):
        for px in proxies:
            r = results.get((sc, px.name))
            if not r:
                continue
            log(f"{label:<22}{px.name:<9}{fmt(r['rps']):>10}{fmt(r['rpcpu']):>11}{fmt(r['cpu_pct'])+'%':>10}"
                f"{fmt(r['core1_pct'])+'%':>7}{fmt(r['p50_ms'], 2):>9}{fmt(r['p99_ms'], 2):>9}"
                f"{r['non2xx']:>9}{r['errors']:>8}")
            if r["errors"]:
                notes.append(f"{label} {px.name}: socket errors ({r['errdetail']})")
            if len(r.get("runs", [])) > 1:
                notes.append(f"{label} {px.name}: runs req/s " + ", ".join(fmt(x["rps"]) for x in r["runs"])
                             + "; req/CPU-s " + ", ".join(fmt(x["rpcpu"]) for x in r["runs"]))
            if r.get("pstat"):
                notes.append(f"{label} {px.name}: {r['pstat']['syscalls_per_req']:.2f} syscalls/req, "
                             f"{r['pstat']['cswitch_per_req']:.3f} context switches/req (perf stat, extra run)")
            if r.get("note"):
                notes.append(f"{label} {px.name}: {r['note']}")
            if r.get("log"):
                notes.append(f"{label} {px.name} log tail:\n    " + r["log"].replace("\n", "\n    "))
    if any(k[0] == "idle" for k in results):
        log("-" * 100)
        log(f"{'idle conns (N=' + str(args.idle_conns) + ')':<22}{'proxy':<9}{'RSS before':>12}{'RSS after':>12}"
            f"{'KiB/conn':>10}{'KiB/conn after 1 req':>22}")
        for px in proxies:
            r = results.get(("idle", px.name))
            if not r:
                continue
            log(f"{'idle plain client':<22}{px.name:<9}{fmt(r['before_kib'])+' K':>12}{fmt(r['after_kib'])+' K':>12}"
                f"{fmt(r['per_conn_kib'], 2):>10}{fmt(r['per_conn_req_kib'], 2):>22}")
            if r["fds"] < args.idle_conns:
                notes.append(f"idle {px.name}: only {r['fds']} of {args.idle_conns} connections seen as fds")
            if r["bad"]:
                notes.append(f"idle {px.name}: {r['bad']} of the keep-alive requests failed")
            if r.get("log"):
                notes.append(f"idle {px.name} log tail:\n    " + r["log"].replace("\n", "\n    "))
    if any(k[0].startswith("upload") for k in results):
        log("-" * 100)
        log(f"{'upload ' + str(args.upload_mib) + ' MiB':<22}{'proxy':<9}{'status':>8}{'complete':>10}"
            f"{'RSS before':>12}{'peak RSS':>12}{'growth MiB':>12}{'MiB/s':>9}{'CPU-s':>7}")
        for how, label in (("curl", "chunked (curl -T -)"), ("python", "Content-Length (py)")):
            for px in proxies:
                r = results.get(("upload-" + how, px.name))
                if not r:
                    continue
                log(f"{label:<22}{px.name:<9}{r['status'][:8]:>8}{'yes' if r['complete'] else 'NO':>10}"
                    f"{fmt(r['before_kib'])+' K':>12}{fmt(r['peak_kib'])+' K':>12}{fmt(r['growth_mib'], 2):>12}"
                    f"{fmt(r['mib_s'], 0):>9}{fmt(r['cpu_s'], 2):>7}")
                if not r["complete"]:
                    notes.append(f"upload {how} {px.name}: status {r['status']}, upstream received {r['received']} bytes")
                if r.get("log"):
                    notes.append(f"upload {how} {px.name} log tail:\n    " + r["log"].replace("\n", "\n    "))
    if ("tls10", "all") in results:
        notes += report_tls10(env, results[("tls10", "all")])
    log("=" * 100)
    log("req/CPU-s: requests per CPU-second of the proxy's processes (utime+stime); proxy CPU: busy % of its core;")
    log("core1: wrk + upstream busy % of CPU 1 (near 100% means the load side, not the proxy, set the req/s).")
    log("KiB/conn: VmRSS growth / N (nginx preallocates its worker_connections slots, so its figure leaves them out).")
    log(f"load average: {' '.join(open('/proc/loadavg').read().split()[:3])} (after); other work on the machine skews "
        "req/s and p99,")
    log("req/CPU-s is the figure that holds.")

    # targets
    log("")
    log("targets:")

    def check(desc, ok, measured):
        verdict = "n/a " if ok is None else ("PASS" if ok else "MISS")
        log(f"  {verdict}  {desc}: {measured}")

    def paired(a, b, key):
        ra, rb = a.get("runs", []), b.get("runs", [])
        if len(ra) < 2 or len(ra) != len(rb):
            return ""
        return "; run by run " + ", ".join(f"{x[key] / y[key]:.2f}x" for x, y in zip(ra, rb))

    t, n = results.get(("keepalive", "tlslift")), results.get(("keepalive", "nginx"))
    if t and n:
        ratio = t["rpcpu"] / n["rpcpu"]
        check(f"keep-alive req/CPU-s >= {TARGET_KA_CPU_RATIO}x nginx", ratio >= TARGET_KA_CPU_RATIO,
              f"{ratio:.2f}x ({fmt(t['rpcpu'])} vs {fmt(n['rpcpu'])})" + paired(t, n, "rpcpu"))
    else:
        check(f"keep-alive req/CPU-s >= {TARGET_KA_CPU_RATIO}x nginx", None, "not measured")
    t, s = results.get(("close", "tlslift")), results.get(("close", "stunnel"))
    if t and s:
        ratio = t["rps"] / s["rps"]
        check(f"Connection: close req/s >= {TARGET_CLOSE_RATIO}x stunnel", ratio >= TARGET_CLOSE_RATIO,
              f"{ratio:.2f}x ({fmt(t['rps'])} vs {fmt(s['rps'])} req/s; per CPU-s "
              f"{t['rpcpu'] / s['rpcpu']:.2f}x)" + paired(t, s, "rps"))
    else:
        check(f"Connection: close req/s >= {TARGET_CLOSE_RATIO}x stunnel", None, "not measured")
    t = results.get(("idle", "tlslift"))
    if t:
        check(f"idle plain client connection <= {TARGET_IDLE_KIB:g} KiB RSS", t["per_conn_kib"] <= TARGET_IDLE_KIB,
              f"{t['per_conn_kib']:.2f} KiB/conn ({t['per_conn_kib'] / TARGET_IDLE_KIB:.2f}x the budget)")
    else:
        check(f"idle plain client connection <= {TARGET_IDLE_KIB:g} KiB RSS", None, "not measured")
    ups = [results[k] for k in (("upload-curl", "tlslift"), ("upload-python", "tlslift")) if k in results]
    if ups:
        worst = max(u["growth_mib"] for u in ups)
        complete = all(u["complete"] for u in ups)
        check(f"{args.upload_mib} MiB upload streams, peak RSS growth < {TARGET_UPLOAD_MIB:g} MiB",
              worst < TARGET_UPLOAD_MIB and complete,
              f"{worst:.2f} MiB (worst of {len(ups)}; {worst / TARGET_UPLOAD_MIB:.2f}x the budget)"
              + ("" if complete else "; upload NOT fully received upstream"))
    else:
        check(f"upload peak RSS growth < {TARGET_UPLOAD_MIB:g} MiB", None, "not measured")

    if notes:
        log("")
        log("notes:")
        for n_ in notes:
            log("  " + n_)
    perf = (results.get(("keepalive", "tlslift")) or {}).get("perf")
    if perf:
        log("")
        log("perf (tlslift, keep-alive run, self time, top symbols):")
        log(perf)


if __name__ == "__main__":
    sys.exit(main())
