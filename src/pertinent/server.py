"""Running the service: the HTTP server plus the job workers it starts for itself."""

from __future__ import annotations

import gc
import ipaddress
import logging
import multiprocessing
import os
import socket
import tempfile
import threading
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import uvicorn

from pertinent.api.app import App, create_app
from pertinent.config import Settings
from pertinent.jobs.worker import process_main
from pertinent.serving.balance import SLOTS_ENV, Balancer
from pertinent.store.catalog import Catalog

log = logging.getLogger("pertinent.server")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(
                ipaddress.ip_address(info[4][0]).is_loopback
                for info in socket.getaddrinfo(host, None)
            )
        except OSError:
            return False


def prepare(settings: Settings) -> None:
    """Create the data directories and bring the catalog schema up to date."""
    settings.home.mkdir(parents=True, exist_ok=True)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.model_dir.mkdir(parents=True, exist_ok=True)
    catalog = Catalog(settings.catalog_url)
    try:
        catalog.migrate()
    finally:
        catalog.dispose()


def start_workers(settings: Settings, count: int) -> list[BaseProcess]:
    ctx = multiprocessing.get_context("spawn")
    env = settings.to_env()
    procs: list[BaseProcess] = []
    for i in range(count):
        p = ctx.Process(
            target=process_main,
            args=(env, os.getpid(), i),
            name=f"pertinent-worker-{i}",
            daemon=True,
        )
        p.start()
        procs.append(p)
    return procs


def app_from_env() -> App:
    """One HTTP process's app, from the settings its parent put in the environment."""
    return _serving_app(Settings.from_env())


def _serving_app(settings: Settings) -> App:
    """The app one HTTP process serves, collected and frozen, its models loading."""
    app = create_app(settings)
    app.balancer = Balancer.from_env(settings.http_processes)  # None for one process
    _freeze()
    _warm(app)
    return app


def _warm(app: App) -> None:
    """Loads the ACTIVE campaigns' models beside the first requests (``Runtime.warm``):
    a process started by a restart, or one of several HTTP processes, answers its
    first GetRecommendations without loading a model first."""
    services = app.services
    threading.Thread(
        target=services.runtime.warm,
        args=(services.settings, services.catalog),
        name="pertinent-warm",
        daemon=True,
    ).start()


def _freeze() -> None:
    """Everything loaded so far lives as long as the server: moving it out of the
    collector's generations makes full collections (15-75 ms pauses under load, the
    PutEvents p99) scan far less (bench/events.py)."""
    gc.collect()
    gc.freeze()


def serve(settings: Settings, host: str, port: int, *, log_level: str = "warning") -> None:
    if not is_loopback(host):
        raise SystemExit(
            f"Refusing to listen on {host}: without PERTINENT_ACCESS_KEYS any caller would be "
            "trusted. Listen on 127.0.0.1, or configure access keys."
        )
    prepare(settings)
    workers = start_workers(settings, settings.workers)
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "access_log": False,
        # Nothing here reads X-Forwarded-For, and the keep-alive balance counts
        # connections by the peer address that the proxy-headers rewrite would replace.
        "proxy_headers": False,
        "loop": "uvloop",
        "http": "httptools",
    }
    try:
        if settings.http_processes > 1:
            # uvicorn's workers share the socket and each build their app from the
            # environment; every request-scoped state lives in the catalog, so any
            # process may answer any request (live events included).
            os.environ.update(settings.to_env())
            # In the machine's temp directory, not the home: a home shared by several
            # machines must not share their processes' connection counts.
            handle, name = tempfile.mkstemp(prefix="pertinent-http-slots-")
            os.close(handle)
            slots = Path(name)
            os.environ[SLOTS_ENV] = name
            try:
                uvicorn.run(
                    "pertinent.server:app_from_env",
                    factory=True,
                    workers=settings.http_processes,
                    **options,
                )
            finally:
                slots.unlink(missing_ok=True)
            return
        uvicorn.run(_serving_app(settings), **options)
    finally:
        for p in workers:
            p.terminate()
        for p in workers:
            p.join(timeout=5)
