"""Which web server: keyledger under each candidate, side by side in one run.

Run with ``.venv/bin/python -m bench.servers`` (needs ``wrk``). Starts the
same app under gunicorn's sync workers (the Procfile's server before issue 10),
gunicorn's threaded workers with keep-alive (gunicorn's access log), and Granian
(WSGI) with 1, 2 and 4 threads per worker and with its default, serving what
``keyledger serve`` serves (keyledger's own access log), all with 2 worker
processes, plus the bare WSGI hello of ``bench/hello.py`` under gunicorn sync
(the yardstick) and under Granian; then measures ``/healthz``, forward auth and
``GET /v1/`` on each in interleaved rounds (wrk, 2 threads, 8 keep-alive
connections) and prints medians and ratios to the yardstick.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import uuid
from pathlib import Path

from bench.run import BIN, bootstrap, projector, redis_server, started, wrk
from keyledger.adapters.embedded import free_port
from keyledger.bootstrap import build
from keyledger.config import Settings

YARDSTICK = "hello, gunicorn sync (yardstick)"


def gunicorn(port: int, app: str, *extra: str) -> list[str]:
    bind = f"127.0.0.1:{port}"
    return [
        str(BIN / "gunicorn"),
        "--no-control-socket",
        "--bind",
        bind,
        "--workers",
        "2",
        *extra,
        app,
    ]


def granian(port: int, app: str, *extra: str) -> list[str]:
    return [
        str(BIN / "granian"), "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(port),
        "--workers", "2", "--log-level", "warning", "--no-ws", *extra, app,
    ]  # fmt: skip


def candidates() -> dict[str, tuple[int, list[str], bool]]:
    """name -> (port, argv, is the bare hello app)."""
    app, access = "keyledger:create_app()", ("--access-logfile", "-")
    found: dict[str, tuple[int, list[str], bool]] = {}

    def add(name: str, make: object, *args: str, hello: bool = False) -> None:
        port = free_port()
        found[name] = (port, make(port, *args), hello)  # type: ignore[operator]

    add(YARDSTICK, gunicorn, "bench.hello:app", hello=True)
    add("hello, granian", granian, "bench.hello:app", hello=True)
    add("keyledger, gunicorn sync", gunicorn, app, *access)
    add("keyledger, gunicorn gthread x4, keep-alive", gunicorn, app, *access,
        "--worker-class", "gthread", "--threads", "4", "--keep-alive", "5")  # fmt: skip
    # What ``keyledger serve`` runs: its own access log (keyledger.serving.served_app).
    served = ("keyledger.serving:served_app", "--factory")
    for threads in ("1", "2", "4"):
        add(f"keyledger, granian {threads} thread(s)", granian, *served,
            "--blocking-threads", threads)  # fmt: skip
    add("keyledger, granian default threads", granian, *served)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as url:
        namespace = f"bench{uuid.uuid4().hex[:6]}"
        env = {
            **os.environ,
            "REDIS_URL": url,
            "KEYLEDGER_NAMESPACE": namespace,
            "KEYLEDGER_RATE_LIMIT_PER_MINUTE": "0",
            "KEYLEDGER_LOG_LEVEL": "WARNING",
            "PATH": f"{BIN}:{os.environ['PATH']}",
        }
        servers = candidates()
        health = {
            name: f"http://127.0.0.1:{p}/{'' if h else 'healthz'}"
            for name, (p, _, h) in servers.items()
        }
        with started(
            [projector(env)] + [(argv, env, health[n]) for n, (_, argv, _) in servers.items()],
            Path(tmp),
        ):
            _, account_key, secret = bootstrap(
                build(Settings(redis_url=url, namespace=namespace, apply_timeout=5.0))
            )
            keys = {"x-api-key": account_key, "x-api-secret-key": secret}
            check = {**keys, "X-Original-Method": "GET", "X-Original-URI": "/orders"}
            targets: list[tuple[str, str, str, dict[str, str]]] = []
            for name, (port, _, hello) in servers.items():
                base = f"http://127.0.0.1:{port}"
                if hello:
                    targets.append((name, "hello", f"{base}/", {}))
                else:
                    targets += [
                        (name, "/healthz", f"{base}/healthz", {}),
                        (name, "forward auth", f"{base}/v1/auth/check", check),
                        (name, "GET /v1/", f"{base}/v1/", keys),
                    ]
            for _, _, target, headers in targets:
                wrk(target, headers, 1, 8)
            rates: dict[tuple[str, str], list[float]] = {}
            for _ in range(args.rounds):
                for name, what, target, headers in targets:
                    rates.setdefault((name, what), []).append(
                        wrk(target, headers, args.seconds, 8)[0]
                    )
    yard = statistics.median(rates[(YARDSTICK, "hello")])
    print(f"\n| server | request | req/s (median of {args.rounds}) | x yardstick |")
    print("|---|---|---|---|")
    for (name, what), runs in rates.items():
        median = statistics.median(runs)
        print(f"| {name} | {what} | {median:,.0f} | {median / yard:.2f} |")


if __name__ == "__main__":
    main()
