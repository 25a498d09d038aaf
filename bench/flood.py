"""A warm key's GET /v1/ latency while a flood of forged keys (from 240 IPv6 /48s, so only
the ceiling on failed verifications applies) hits the Procfile's server (2 workers, trusted
local proxy), for several ceilings side by side (docs/integrators.md, "Failed authentications").

Run with ``.venv/bin/python -m bench.flood 0,2,20,50``. A measurement script: the flood
client runs on the same cores as the server.
"""

import http.client
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from bench.run import BIN, bootstrap, projector, redis_server, started, web
from keyledger.adapters.embedded import free_port
from keyledger.bootstrap import build
from keyledger.config import Settings
from keyledger.domain.tokens import KeyKind, generate


def run(port, keys, seconds, flood_threads):
    stop = threading.Event()
    answers = {}
    refused = []
    lock = threading.Lock()

    def flooder(i):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        n = 0
        while not stop.is_set():
            n += 1
            net = (i * 1000 + n) % 240
            hdr = {
                "x-api-key": keys["x-api-key"],
                "x-api-secret-key": generate(KeyKind.SECRET, 0).token,
                "X-Forwarded-For": f"2001:db8:{net:x}::{n % 50 + 1:x}",
            }
            try:
                c.request("GET", "/v1/", headers=hdr)
                r = c.getresponse()
                r.read()
                with lock:
                    answers[r.status] = answers.get(r.status, 0) + 1
            except Exception:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def legit(samples, dur):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        end = time.monotonic() + dur
        while time.monotonic() < end:
            s = time.perf_counter()
            c.request("GET", "/v1/", headers=keys)
            r = c.getresponse()
            r.read()
            if r.status != 200:
                refused.append(r.status)
            samples.append((time.perf_counter() - s) * 1000)
            time.sleep(0.01)

    before = []
    legit(before, 3)
    ts = [threading.Thread(target=flooder, args=(i,)) for i in range(flood_threads)]
    for t in ts:
        t.start()
    during = []
    legit(during, seconds)
    stop.set()
    for t in ts:
        t.join()
    answers["legit refused"] = len(refused)
    answers["legit"] = len(during)
    return (
        statistics.median(before),
        statistics.median(during),
        sorted(during)[int(len(during) * 0.9)],
        answers,
    )


with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as url:
    ns = f"flood{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        "REDIS_URL": url,
        "KEYLEDGER_NAMESPACE": ns,
        "KEYLEDGER_RATE_LIMIT_PER_MINUTE": "0",
        "KEYLEDGER_LOG_LEVEL": "WARNING",
        "KEYLEDGER_TRUSTED_PROXIES": "1",
        "WEB_CONCURRENCY": "2",
        "PATH": f"{BIN}:{os.environ['PATH']}",
    }
    ceilings = sys.argv[1].split(",")
    ports = {c: free_port() for c in ceilings}
    procs = [projector(env)] + [
        web({**env, "KEYLEDGER_FAILED_VERIFICATIONS_PER_SECOND": c}, ports[c]) for c in ceilings
    ]
    with started(procs, Path(tmp)):
        c = build(Settings(redis_url=url, namespace=ns, apply_timeout=5.0))
        _, ak, sk = bootstrap(c)
        keys = {"x-api-key": ak, "x-api-secret-key": sk}
        for rnd in range(2):
            for ceiling in ceilings:
                b, d, p90, ans = run(ports[ceiling], keys, 8, 6)
                print(
                    f"round {rnd} ceiling {ceiling:>4}: legit median {b:.2f} / {d:.2f} ms (p90 {p90:.2f}) flood {ans}",
                    flush=True,
                )
