#!/bin/sh
# Regenerate the seed corpus corpus/hello/ for fuzz_hello: the first bytes
# real clients send (openssl s_client with each version, with and without
# SNI, curl, Python's ssl) captured by a local listener, plus an SSLv2-format
# hello and a plain HTTP request. The files are small and committed; run
# this again only to refresh them. Needs openssl and python3 (curl is used
# when present).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=$here/corpus/hello
mkdir -p "$out"

python3 - "$out" <<'PY'
import os, shutil, socket, subprocess, sys

out = sys.argv[1]

def hello_complete(b):
    """True once B holds whole handshake records carrying one message."""
    msg, off = b"", 0
    while len(b) - off >= 5 and b[off] == 22:
        n = int.from_bytes(b[off + 3:off + 5], "big")
        if len(b) - off - 5 < n:
            return False
        msg += b[off + 5:off + 5 + n]
        off += 5 + n
        if len(msg) >= 4 and len(msg) >= 4 + int.from_bytes(msg[1:4], "big"):
            return True
    return len(b) > 0 and b[0] != 22

def capture(name, argv):
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    ls.settimeout(10)
    port = ls.getsockname()[1]
    argv = [a.replace("PORT", str(port)) for a in argv]
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    data = b""
    try:
        c, _ = ls.accept()
        c.settimeout(10)
        while not hello_complete(data):
            chunk = c.recv(65536)
            if not chunk:
                break
            data += chunk
        c.close()
    finally:
        p.kill()
        p.wait()
        ls.close()
    if not data:
        sys.exit("no bytes from: " + " ".join(argv))
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
    print(f"{name}: {len(data)} bytes")

sc = ["openssl", "s_client", "-connect", "127.0.0.1:PORT"]
old = ["-cipher", "DEFAULT:@SECLEVEL=0"]
capture("openssl-tls10-sni.bin", sc + ["-tls1"] + old + ["-servername", "api.raygun.com"])
capture("openssl-tls10-nosni.bin", sc + ["-tls1", "-noservername"] + old)
capture("openssl-tls11-sni.bin", sc + ["-tls1_1"] + old + ["-servername", "api.raygun.com"])
capture("openssl-tls12-sni.bin", sc + ["-tls1_2", "-servername", "api.raygun.com"])
capture("openssl-tls13-sni.bin", sc + ["-tls1_3", "-servername", "api.raygun.com"])
capture("openssl-default-upper-sni.bin", sc + ["-servername", "API.Example.COM"])
if shutil.which("curl"):
    capture("curl-tls10.bin", ["curl", "-sk", "--max-time", "5", "--tlsv1.0", "--tls-max", "1.0",
                               "--ciphers", "DEFAULT:@SECLEVEL=0", "https://localhost:PORT/"])
capture("python-tls10.bin", [sys.executable, "-W", "ignore", "-c", """
import socket, ssl
c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
c.check_hostname = False
c.verify_mode = ssl.CERT_NONE
c.minimum_version = c.maximum_version = ssl.TLSVersion.TLSv1
c.set_ciphers("DEFAULT:@SECLEVEL=0")
c.wrap_socket(socket.create_connection(("127.0.0.1", PORT)), server_hostname="api.raygun.com")
"""])

# An SSLv2-compatible CLIENT-HELLO (what pre-2010 stacks sent), and plain HTTP.
with open(os.path.join(out, "sslv2-hello.bin"), "wb") as f:
    specs = bytes.fromhex("00000a00002f000035010080" "0700c0030080060040")
    body = bytes([1, 3, 1, 0, len(specs), 0, 0, 0, 16]) + specs + bytes(range(16))
    f.write(bytes([0x80 | len(body) >> 8, len(body) & 0xFF]) + body)
with open(os.path.join(out, "plain-get.bin"), "wb") as f:
    f.write(b"GET /entries HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n")
PY
