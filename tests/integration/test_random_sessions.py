"""Seeded random request sequences on keep-alive connections.

Each step picks a method, a body size and framing (Content-Length or chunked
with random chunk sizes), a response mode, and sometimes pipelines a few
requests in one write. Every response is checked byte for byte, and the
upstream must see exactly the requests sent, in order. The seeds are fixed,
so a failure reproduces. TLSLIFT_RANDOM_SEEDS=1,2,... runs other seeds.
"""

import json
import os
import random

import pytest

from harness import RawConn, build_request, chunk_encode, payload, sha256

SIZES = [0, 1, 2, 100, 4095, 4096, 4097, 16384, 65535, 65536, 65537, 200000, 1 << 20]


def _step(rng, i):
    """(request bytes, method, check(response), expected upstream path)."""
    kind = rng.choice(["mirror", "size", "chunked", "echo", "head", "status"])
    if kind == "mirror":
        n = rng.choice(SIZES)
        body = payload(n + i)
        if rng.random() < 0.5:
            req = build_request("POST", "/mirror", [("Content-Length", str(len(body)))], body)
        else:
            sizes = tuple(rng.choice([1, 3, 100, 4096, 70000]) for _ in range(3))
            req = build_request("POST", "/mirror", [("Transfer-Encoding", "chunked")], chunk_encode(body, sizes))

        def check(r, body=body):
            assert r.status == 200 and sha256(r.body) == sha256(body)
        return req, "POST", check, "/mirror"
    if kind in ("size", "chunked"):
        n = rng.choice(SIZES)
        path = "/%s/%d" % (kind, n)

        def check(r, n=n):
            assert r.status == 200 and sha256(r.body) == sha256(payload(n))
        return build_request("GET", path), "GET", check, path
    if kind == "head":
        n = rng.choice(SIZES)
        path = "/size/%d" % n

        def check(r, n=n):
            assert r.status == 200 and r.header("Content-Length") == str(n) and r.body == b""
        return build_request("HEAD", path), "HEAD", check, path
    if kind == "status":
        code = rng.choice([204, 304, 404, 500])
        path = "/status/%d" % code

        def check(r, code=code):
            assert r.status == code
        return build_request("GET", path), "GET", check, path
    path = "/echo/%d" % i

    def check(r, path=path):
        assert r.status == 200 and json.loads(r.body)["path"] == path
    return build_request("GET", path, [("X-Step", str(i))]), "GET", check, path


SEEDS = [int(x) for x in os.environ.get("TLSLIFT_RANDOM_SEEDS", "1,2,3,4,5").split(",")]


@pytest.mark.parametrize("seed", SEEDS)
def test_random_keepalive_session(daemon, upstream, seed):
    rng = random.Random(seed)
    expected = []
    with RawConn(daemon.port, timeout=20) as c:
        i = 0
        while i < 40:
            batch = [_step(rng, i + k) for k in range(rng.choice([1, 1, 1, 2, 3]))]
            i += len(batch)
            c.send(b"".join(req for req, _, _, _ in batch))
            for k, (req, method, check, path) in enumerate(batch):
                r = c.read_response(method=method)
                try:
                    check(r)
                except AssertionError:
                    raise AssertionError("seed %d step %d (%s %s): %r" % (seed, i - len(batch) + k, method, path, r))
                expected.append(path)
    assert [h["path"] for h in upstream.heads] == expected
