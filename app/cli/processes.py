"""The long-running processes: the web server, the projector, the worker, and ``run``
for every Procfile process."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import threading
from pathlib import Path

import click

from keyledger.adapters.embedded import DataDirInUse, EmbeddedRedis, alive, port_is_free
from keyledger.adapters.redis_client import connect
from keyledger.bootstrap import check_partitions
from keyledger.cli.common import container, main
from keyledger.config import REDIS_URL_FILE
from keyledger.observability import count_alone
from keyledger.observability import logs as observability_logs

DEFAULT_EMBEDDED_PORT = 6380
#: The web workers' prometheus_client multiprocess directory that ``run`` prepares.
METRICS_DIR = Path("var") / "metrics"
EMBEDDED_DATA = Path("var") / "redis"


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
    client = connect(
        settings.redis_url, timeout=5.0, socket_timeout=10.0, cluster=settings.redis_cluster
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    running = Projector(client, built.keyspace, consumer=consumer, block_ms=2000)
    if settings.projector_metrics_port is not None:
        from keyledger.observability.collectors import LogStateCollector, ProjectorCollector
        from keyledger.observability.serve import serve

        collectors = [LogStateCollector(built.topology, built.keyspace)]
        serve(
            settings.projector_metrics_port,
            [*collectors, ProjectorCollector(lambda: running.applied)],
            "projector",
        )
    running.run(stop)


@main.command()
@click.option("--burst", is_flag=True, help="Run the queued jobs, then exit.")
@click.option("--queue", "queue_name", default=None, help="The RQ queue (default: keyledger).")
def worker(burst: bool, queue_name: str | None) -> None:
    """Run the RQ worker for rebuilds and expiry sweeps (queue 'keyledger', JSON serializer)."""
    from rq import Queue, Worker
    from rq.serializers import JSONSerializer

    from keyledger.workers.jobs import QUEUE, queue_connection

    count_alone()
    built = container()
    settings = built.settings
    observability_logs.configure(settings.log_level, settings.log_format)
    connection = queue_connection(settings.queue_redis_url)  # RQ lengthens its socket timeout
    if settings.worker_metrics_port is not None:
        from keyledger.observability.collectors import RebuildCollector
        from keyledger.observability.serve import serve

        scrapes = queue_connection(settings.queue_redis_url)
        serve(
            settings.worker_metrics_port,
            [RebuildCollector(built.redis, scrapes, built.keyspace)],
            "worker",
        )
    queue = Queue(queue_name or QUEUE, connection=connection, serializer=JSONSerializer)
    Worker([queue], connection=connection, serializer=JSONSerializer).work(
        burst=burst, logging_level=settings.log_level
    )


@main.command()
def serve() -> None:
    """Run the web server (the Procfile's ``web``): Granian, WSGI, on HOST:PORT.

    WEB_CONCURRENCY worker processes (default 2), each building its own app; access
    lines on stdout; SIGTERM stops accepting, lets requests in flight finish, then exits.
    """
    from keyledger import serving
    from keyledger.config import ConfigError, Settings

    try:  # a bad setting stops the server here, not each worker in a loop
        settings = Settings.from_env()
        server = serving.server(dict(os.environ), settings.log_format)
    except (ConfigError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    server.serve()


@main.command()
@click.option("--procfile", default="Procfile", show_default=True)
def run(procfile: str) -> None:
    """Run every Procfile process (honcho); start an embedded Redis if REDIS_URL is unset.

    Stops at once, naming what is in the way, when another ``keyledger run`` serves
    this directory's data or the web port is taken.
    """
    from honcho.command import main as honcho_main

    embedded: EmbeddedRedis | None = None
    metrics_dir: Path | None = None
    url = ""
    if not os.environ.get("REDIS_URL"):
        # Its own process group: a Ctrl-C reaches the Procfile's processes, which stop
        # while Redis still answers; Redis is stopped once they have (below).
        embedded = EmbeddedRedis(EMBEDDED_DATA, port=None, persistent=True, own_process_group=True)
        try:
            embedded.lock.acquire()
        except DataDirInUse as exc:
            raise click.ClickException(already_running(exc)) from None
    try:
        check_web_port()
        if embedded is not None:
            if port_is_free(DEFAULT_EMBEDDED_PORT):
                embedded.port = DEFAULT_EMBEDDED_PORT
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
        # /metrics; emptied at each start, as prometheus_client requires. Only after the
        # checks above: a run that stops at once must not empty a running one's directory.
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            metrics_dir = fresh_metrics_dir()
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir.resolve())
        bindir = str(Path(sys.executable).parent)
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
        # A closed terminal (SIGHUP) stops everything as Ctrl-C does, Redis last: outside
        # the terminal's process group, Redis would not be told by the terminal itself.
        signal.signal(signal.SIGHUP, lambda *_: os.kill(os.getpid(), signal.SIGTERM))
        honcho_main(["start", "-f", procfile])
    finally:
        if metrics_dir is not None:
            release_metrics_dir(metrics_dir)
        if embedded is not None:
            embedded.stop()
            forget_address(url)


def fresh_metrics_dir() -> Path:
    """An empty metrics directory of this run's own, ``var/metrics/run-PID``: two runs in
    one directory (each with its own ``REDIS_URL``) must not empty each other's, nor race
    to create one. What a run that is gone left there is removed."""
    METRICS_DIR.mkdir(parents=True, exist_ok=True)
    for entry in METRICS_DIR.iterdir():
        owner = entry.name.removeprefix("run-")
        if entry.is_dir() and owner.isdigit() and int(owner) != os.getpid() and alive(int(owner)):
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    own = METRICS_DIR / f"run-{os.getpid()}"
    own.mkdir()
    return own


def release_metrics_dir(own: Path) -> None:
    """Remove this run's metrics directory, and ``var/metrics`` once no run uses it."""
    shutil.rmtree(own, ignore_errors=True)
    with contextlib.suppress(OSError):
        own.parent.rmdir()


def check_web_port() -> None:
    """Stop at once when the web process could not listen on HOST:PORT."""
    host, port = os.environ.get("HOST", "127.0.0.1"), os.environ.get("PORT", "8080")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise click.ClickException(f"PORT={port!r} is not a port number")
    if not port_is_free(int(port), host):
        free = next((p for p in range(int(port) + 1, 65536) if port_is_free(p, host)), None)
        raise click.ClickException(
            f"port {port} on {host} is already in use (another server, or another "
            f"'make run'?): stop what listens there, or choose another port with PORT"
            + (f", for example PORT={free} make run" if free else "")
        )


def already_running(exc: DataDirInUse) -> str:
    """Which instance holds the data directory, and how to stop it."""
    holder = exc.holder
    where = f"with its Redis at {holder['url']}" if holder.get("url") else "(still starting)"
    pid, redis_pid = holder.get("pid"), holder.get("redisPid")
    if alive(pid):
        stop = f"stop it with Ctrl-C in its terminal, or: kill {pid}"
        who = f"keyledger run (pid {pid})"
    elif alive(redis_pid):
        stop = f"stop that Redis with: kill {redis_pid}"
        who = f"an embedded redis-server (pid {redis_pid}) left by a keyledger run that is gone"
    else:
        stop = "wait a moment and try again"
        who = "another process"
    return (
        f"{who} is already serving the data in {exc.data_dir} {where}; "
        f"not starting a second Redis on the same data. To use the running one, run the "
        f"keyledger command in this directory; to start again, {stop}"
    )


def forget_address(url: str) -> None:
    """Remove var/redis.url only when it still holds the address this run wrote."""
    with contextlib.suppress(OSError):
        if url and REDIS_URL_FILE.read_text().strip() == url:
            REDIS_URL_FILE.unlink()
