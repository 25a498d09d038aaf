"""Memory per entry of a web process's authentication cache (``KEYLEDGER_AUTH_CACHE_SIZE``).

Run with ``.venv/bin/python -m bench.cache_memory``. Builds the real app against an
embedded Redis, authenticates one real key pair (so the records have their real
shapes and sizes), then fills each per-process memory with ``N`` distinct pairs
shaped like it and measures what they hold with ``tracemalloc``:

* the authentication records of a pair (``AuthCache``: key, account and user
  records with the stored argon2id hashes, and the index by account);
* the hasher's memory of a verified secret (``KeyHasher``: a keyed digest and a
  reference to the stored hash, which the records hold already);
* the rate limit's lease of an account key (``RateLimiter``);
* the rendered ``GET /v1/`` of a pair (``web.whoami``).

Every figure is bytes per entry; ``KEYLEDGER_AUTH_CACHE_SIZE`` bounds each of them.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import tempfile
import threading
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from keyledger.adapters.authlookup import Lookup
from keyledger.adapters.embedded import EmbeddedRedis
from keyledger.adapters.ratelimit import _Lease
from keyledger.bootstrap import build
from keyledger.config import Settings
from keyledger.domain.events import OPERATOR
from keyledger.web.factory import create_app
from keyledger.workers.projector import Projector


def fresh(text: str, n: int) -> str:
    """A new string of the same length as ``text`` (distinct per ``n``)."""
    suffix = f"{n:08x}"
    return text[: -len(suffix)] + suffix


def per_entry(n: int, fill: Callable[[int], Any]) -> float:
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    kept = [fill(i) for i in range(n)]
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    del kept
    return grown / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=20_000)
    n = parser.parse_args().entries
    workdir = Path(tempfile.mkdtemp(prefix="kl-bench-memory-"))
    server = EmbeddedRedis(workdir / "redis", persistent=False)
    url = server.start()
    stop = threading.Event()
    try:
        settings = Settings(redis_url=url, namespace="benchmem", rate_limit_per_minute=10**9)
        container = build(settings)
        projector = Projector(build(settings).redis, container.keyspace, consumer="m", block_ms=50)
        threading.Thread(target=projector.run, args=(stop,), daemon=True).start()
        ledger = container.ledger
        account, owner, _ = ledger.register_account("Bench", "Ann", "a@example.com", OPERATOR)
        account_key, _ = ledger.enable_api(account, OPERATOR)
        assert account_key is not None
        secret, _ = ledger.create_secret_key(account, "bench-key-0001", owner, (), OPERATOR)
        app = create_app({"container": container})
        client = app.test_client()
        assert container.auth_cache.wait_until_subscribed()
        headers = {"x-api-key": account_key, "x-api-secret-key": secret}
        assert client.get("/v1/", headers=headers).status_code == 200
        assert client.get("/v1/", headers=headers).status_code == 200
        cache = container.auth_cache
        cache.capacity = n + 10
        (pair, (lookup, _)), *_ = cache._entries.items()

        def record(i: int) -> None:
            assert lookup.account_key and lookup.account and lookup.secret_key and lookup.user
            account_id = fresh(lookup.account.id, i)
            copy = Lookup(
                account_key=dataclasses.replace(
                    lookup.account_key,
                    key_id=fresh(pair[0], i),
                    account_id=account_id,
                ),
                account_key_hash=fresh(lookup.account_key_hash or "", i),
                account=dataclasses.replace(
                    lookup.account, id=account_id, name=fresh(lookup.account.name, i)
                ),
                secret_key=dataclasses.replace(
                    lookup.secret_key,
                    key_id=fresh(pair[1], i),
                    account_id=account_id,
                    name=fresh(lookup.secret_key.name, i),
                    user_id=fresh(lookup.secret_key.user_id, i),
                ),
                secret_key_hash=fresh(lookup.secret_key_hash or "", i),
                user=dataclasses.replace(
                    lookup.user,
                    id=fresh(lookup.user.id, i),
                    account_id=account_id,
                    name=fresh(lookup.user.name, i),
                ),
            )
            cache.put((fresh(pair[0], i), fresh(pair[1], i)), copy, cache.epoch)

        hasher = container.hasher
        stored = lookup.secret_key_hash or ""

        def verified(i: int) -> None:
            digest = hashlib.blake2b(str(i).encode(), digest_size=32).digest()
            hasher._verified[digest] = stored  # as verify_any keeps it: a shared reference

        limiter = app.extensions["keyledger.gate"].limiter
        limiter.capacity = n + 10

        def leased(i: int) -> None:
            limiter._leases[fresh(pair[0], i)] = _Lease(
                29_000_000 + i, 100 + i, 1e6 + i, 2e6 + i, 10**9 - i, 1e6 + i
            )

        whoami = app.extensions["keyledger.whoami"]
        whoami.capacity = n + 10
        (body_key, body), *_ = whoami._bodies.items()

        def rendered(i: int) -> None:
            copy = dataclasses.replace(
                body, before=bytes(bytearray(body.before)), after=bytes(bytearray(body.after))
            )
            whoami._bodies[(fresh(body_key[0], i), fresh(body_key[1], i))] = copy

        rows = [
            ("authentication records (AuthCache)", per_entry(n, record)),
            ("verified secret (KeyHasher)", per_entry(n, verified)),
            ("rate-limit lease (RateLimiter)", per_entry(n, leased)),
            ("rendered GET /v1/ (WhoAmICache)", per_entry(n, rendered)),
        ]
        print(f"| per-process memory, {n:,} entries | bytes per entry |")
        print("|---|---|")
        for name, size in rows:
            print(f"| {name} | {size:,.0f} |")
        total = sum(size for _, size in rows)
        print(f"| all four | {total:,.0f} |")
    finally:
        stop.set()
        server.stop()


if __name__ == "__main__":
    main()
