"""The long-running processes: the projector, the worker, and ``run`` for every Procfile process."""

from __future__ import annotations

import os
import shutil
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
from keyledger.observability import count_alone
from keyledger.observability import logs as observability_logs

DEFAULT_EMBEDDED_PORT = 6380
#: The web workers' prometheus_client multiprocess directory that ``run`` prepares.
METRICS_DIR = Path("var") / "metrics"


@main.command()
@click.option("--consumer", default=None, help="Consumer name (default: the host name).")
def projector(consumer: str | None) -> None:
    """Run the projector: the log -> authentication lookup and system log."""
    from keyledger.workers.projector import Projector

    count_alone()
    built = container()
    settings = built.settings
    observability_logs.configure(settings.log_level, settings.log_format)
    check_partitions(built.redis, built.keyspace)
    # The socket timeout must outlast the blocking read (BLOCK 2000 ms).
    client = connect(settings.redis_url, timeout=5.0, socket_timeout=10.0)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    running = Projector(client, built.keyspace, consumer=consumer, block_ms=2000)
    if settings.projector_metrics_port is not None:
        from keyledger.observability.collectors import LogStateCollector, ProjectorCollector
        from keyledger.observability.serve import serve

        collectors = [LogStateCollector(built.redis, built.keyspace)]
        serve(
            settings.projector_metrics_port,
            [*collectors, ProjectorCollector(lambda: running.applied)],
            "projector",
        )
    running.run(stop)


@main.command()
@click.option("--burst", is_flag=True, help="Run the queued jobs, then exit.")
def worker(burst: bool) -> None:
    """Run the RQ worker for rebuild jobs (queue 'keyledger', JSON serializer)."""
    from rq import Queue, Worker
    from rq.serializers import JSONSerializer

    from keyledger.workers.jobs import QUEUE, queue_connection

    count_alone()
    built = container()
    settings = built.settings
    observability_logs.configure(settings.log_level, settings.log_format)
    connection = queue_connection(settings.redis_url)  # RQ lengthens its socket timeout
    if settings.worker_metrics_port is not None:
        from keyledger.observability.collectors import RebuildCollector
        from keyledger.observability.serve import serve

        scrapes = queue_connection(settings.redis_url)
        serve(
            settings.worker_metrics_port,
            [RebuildCollector(built.redis, scrapes, built.keyspace)],
            "worker",
        )
    queue = Queue(QUEUE, connection=connection, serializer=JSONSerializer)
    Worker([queue], connection=connection, serializer=JSONSerializer).work(
        burst=burst, logging_level=settings.log_level
    )


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
    # The web workers count into per-process files here, summed by any worker's
    # /metrics; emptied at each start, as prometheus_client requires.
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        shutil.rmtree(METRICS_DIR, ignore_errors=True)
        METRICS_DIR.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(METRICS_DIR.resolve())
    bindir = str(Path(sys.executable).parent)
    os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    try:
        honcho_main(["start", "-f", procfile])
    finally:
        shutil.rmtree(METRICS_DIR, ignore_errors=True)
        if embedded is not None:
            embedded.stop()
            REDIS_URL_FILE.unlink(missing_ok=True)
