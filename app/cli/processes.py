"""The long-running processes: the projector, and ``run`` for every Procfile process."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path

import click

from keyledger.adapters.embedded import EmbeddedRedis, port_is_free
from keyledger.adapters.redis_client import connect
from keyledger.bootstrap import check_partitions
from keyledger.cli.common import container, main
from keyledger.config import REDIS_URL_FILE

DEFAULT_EMBEDDED_PORT = 6380


@main.command()
@click.option("--consumer", default=None, help="Consumer name (default: the host name).")
def projector(consumer: str | None) -> None:
    """Run the projector: the log -> authentication lookup and system log."""
    from keyledger.workers.projector import Projector

    built = container()
    logging.basicConfig(
        level=built.settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    check_partitions(built.redis, built.keyspace)
    # The socket timeout must outlast the blocking read (BLOCK 2000 ms).
    client = connect(built.settings.redis_url, timeout=5.0, socket_timeout=10.0)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    Projector(client, built.keyspace, consumer=consumer, block_ms=2000).run(stop)


@main.command()
@click.option("--procfile", default="Procfile", show_default=True)
def run(procfile: str) -> None:
    """Run every Procfile process (honcho); start an embedded Redis if REDIS_URL is unset."""
    from honcho.command import main as honcho_main

    embedded: EmbeddedRedis | None = None
    if not os.environ.get("REDIS_URL"):
        port = DEFAULT_EMBEDDED_PORT if port_is_free(DEFAULT_EMBEDDED_PORT) else None
        embedded = EmbeddedRedis(Path("var") / "redis", port=port, persistent=True)
        url = embedded.start()
        REDIS_URL_FILE.parent.mkdir(parents=True, exist_ok=True)
        REDIS_URL_FILE.write_text(url + "\n")
        os.environ["REDIS_URL"] = url
        click.echo(
            f"embedded Redis listening on {url} (data in {embedded.data_dir}); "
            f"the keyledger CLI in this directory finds it via {REDIS_URL_FILE}",
            err=True,
        )
    os.environ.setdefault("PORT", "8080")
    bindir = str(Path(sys.executable).parent)
    os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    try:
        honcho_main(["start", "-f", procfile])
    finally:
        if embedded is not None:
            embedded.stop()
            REDIS_URL_FILE.unlink(missing_ok=True)
