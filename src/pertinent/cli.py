"""`pertinent serve | worker | demo`."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from pertinent.config import Settings

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Pertinent: a self-hosted Amazon Personalize that speaks its wire protocol.",
)

HomeOption = Annotated[
    Path | None, typer.Option("--home", help="Data directory (PERTINENT_HOME).", show_default=False)
]


def _settings(home: Path | None, **values: object) -> Settings:
    settings = Settings.from_env()
    return settings.with_overrides(home=home.absolute() if home else None, **values)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[
        int | None,
        typer.Option(help="Job worker processes to start (PERTINENT_WORKERS, default 1)."),
    ] = None,
    http_processes: Annotated[
        int | None,
        typer.Option(
            help="Processes answering HTTP on the port (PERTINENT_HTTP_PROCESSES, default 1)."
        ),
    ] = None,
    home: HomeOption = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
) -> None:
    """Serve the control plane, runtime and events APIs on one port, with job workers."""
    from pertinent.server import serve as run_server

    settings = _settings(home, workers=workers, http_processes=http_processes)
    typer.echo(f"Pertinent listening on http://{host}:{port}  (data in {settings.home})")
    run_server(settings, host, port, log_level=log_level)


@app.command()
def worker(
    home: HomeOption = None,
    threads: Annotated[int, typer.Option(help="Jobs to run at once in this process.")] = 1,
) -> None:
    """Run job workers only, against the catalog in PERTINENT_DATABASE_URL."""
    from pertinent.jobs.worker import run
    from pertinent.server import prepare

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = _settings(home)
    prepare(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    pool = [
        threading.Thread(target=run, args=(settings, stop), name=f"worker-{i}")
        for i in range(threads)
    ]
    for t in pool:
        t.start()
    typer.echo(f"Pertinent worker running {threads} job thread(s); catalog {settings.catalog_url}")
    while any(t.is_alive() for t in pool):
        for t in pool:
            t.join(timeout=0.5)


@app.command()
def demo(
    home: HomeOption = None,
    users: Annotated[int, typer.Option(help="Users to generate.")] = 2000,
    items: Annotated[int, typer.Option(help="Items to generate.")] = 500,
    seed: Annotated[int, typer.Option(help="Seed of the generated data.")] = 7,
) -> None:
    """Start an embedded server, run the whole Personalize loop on generated data, print it."""
    from pertinent.demo.run import run_demo

    run_demo(home=home, users=users, items=items, seed=seed)


def main() -> None:
    app()
