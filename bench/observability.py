"""What the observability instrumentation costs a warm request, in microseconds.

Run with ``.venv/bin/python -m bench.observability``. Builds the real app
against an embedded Redis (a projector runs in a thread), warms every cache,
then times the same admitted forward-auth check (the hot path: answered before
Flask) and ``GET /v1/`` through the WSGI app, with and without the
instrumentation, interleaved, in prometheus_client's multiprocess mode (as
``keyledger run`` serves it). Prints medians per request and the differences.
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

METRICS_DIR = tempfile.mkdtemp(prefix="kl-bench-metrics-")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = METRICS_DIR  # before prometheus_client is imported

from keyledger.adapters.embedded import EmbeddedRedis  # noqa: E402
from keyledger.bootstrap import build  # noqa: E402
from keyledger.config import Settings  # noqa: E402
from keyledger.domain.events import OPERATOR  # noqa: E402
from keyledger.observability import logs  # noqa: E402
from keyledger.observability.observer import IGNORE  # noqa: E402
from keyledger.web.factory import create_app  # noqa: E402
from keyledger.workers.projector import Projector  # noqa: E402

ROUNDS = 15
PER_ROUND = 2_000


def environ(path: str, headers: dict[str, str]) -> dict[str, Any]:
    env: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "bench",
        "SERVER_PORT": "80",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": sys.stdin.buffer,
        "wsgi.errors": sys.stderr,
        "SERVER_PROTOCOL": "HTTP/1.1",
    }
    for name, value in headers.items():
        env["HTTP_" + name.upper().replace("-", "_")] = value
    return env


def per_request_us(wsgi: Callable[..., Any], env: dict[str, Any], n: int) -> float:
    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        assert status.startswith("200"), status

    started = time.perf_counter()
    for _ in range(n):
        body = wsgi(dict(env), start_response)
        for _chunk in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="kl-bench-"))
    server = EmbeddedRedis(workdir / "redis", persistent=False)
    url = server.start()
    stop = threading.Event()
    try:
        settings = Settings(redis_url=url, namespace="bench", partitions=4, rate_limit_per_minute=0)
        container = build(settings)
        projector = Projector(
            build(settings).redis, container.keyspace, consumer="bench", block_ms=100
        )
        threading.Thread(target=projector.run, args=(stop,), daemon=True).start()
        ledger = container.ledger
        account, owner, _ = ledger.register_account("Bench", "Ann", "a@example.com", OPERATOR)
        account_key, _ = ledger.enable_api(account, OPERATOR)
        secret, _ = ledger.create_secret_key(account, "bench-key-0001", owner, (), OPERATOR)
        assert account_key is not None
        app = create_app({"container": container})
        container.auth_cache.wait_until_subscribed()
        logging.getLogger().handlers[:] = [logging.NullHandler()]
        observed = app.wsgi_app
        bare = observed.app  # type: ignore[attr-defined]  # the fast path and Flask, uninstrumented
        gate = app.extensions["keyledger.gate"]
        observer = gate.observer
        keys = {"x-api-key": account_key, "x-api-secret-key": secret}
        cases = {
            "forward auth (fast path)": environ(
                "/v1/auth/check", {**keys, "X-Original-Method": "GET", "X-Original-URI": "/x"}
            ),
            "GET /v1/": environ("/v1/", keys),
        }

        def plain() -> None:
            gate.observer = container.hasher.observer = container.store.observer = IGNORE

        def instrumented() -> None:
            gate.observer = container.hasher.observer = container.store.observer = observer

        variants: dict[str, tuple[Callable[..., Any], Callable[[], None]]] = {
            "none": (bare, plain),
            "metrics": (observed, instrumented),
        }
        for label, env in cases.items():
            for wsgi, setup in variants.values():
                setup()
                per_request_us(wsgi, env, 2_000)  # warm
            samples: dict[str, list[float]] = {name: [] for name in variants}
            json_samples: list[float] = []
            for _ in range(ROUNDS):
                for name, (wsgi, setup) in variants.items():
                    setup()
                    samples[name].append(per_request_us(wsgi, env, PER_ROUND))
                observed.log_requests = observer.logged = True  # type: ignore[attr-defined]
                logs.configure("INFO", "json")
                logging.getLogger().handlers[0].stream = open(os.devnull, "w")  # type: ignore[attr-defined]  # noqa: SIM115 (kept open as the stream)
                json_samples.append(per_request_us(observed, env, PER_ROUND))
                observed.log_requests = observer.logged = False  # type: ignore[attr-defined]
            # Rounds run back to back, so a round's differences share the machine's noise.
            base = statistics.median(samples["none"])
            added = statistics.median(
                m - n for m, n in zip(samples["metrics"], samples["none"], strict=True)
            )
            logged = statistics.median(
                j - n for j, n in zip(json_samples, samples["none"], strict=True)
            )
            print(
                f"{label}: {base:.1f} us uninstrumented; metrics add {added:.1f} us, metrics "
                f"and the JSON request log {logged:.1f} us (medians of the differences of "
                f"{ROUNDS} interleaved rounds of {PER_ROUND} requests)"
            )
    finally:
        stop.set()
        server.stop()


if __name__ == "__main__":
    main()
