"""The worker loop: claim a job, run its handler, record how it ended.

Workers share nothing but the catalog, so any number of them, in any number of
processes or machines, can serve one queue. A worker that dies mid-job stops
heartbeating; after the lease another worker retries the job, or fails its resource
with a reason once the attempts are spent, so nothing stays IN_PROGRESS forever.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback

from pertinent.config import Settings
from pertinent.jobs import autotrain, imports, lifecycle, training  # noqa: F401
from pertinent.jobs.base import HANDLERS, Defer, JobContext, JobFailed
from pertinent.jobs.lifecycle import fail_campaign_update, mark_failed
from pertinent.store.catalog import Catalog, Job

log = logging.getLogger("pertinent.worker")


def record_failure(jc: JobContext, job: Job, reason: str) -> None:
    if job.kind == "deploy" and job.payload.get("update"):
        fail_campaign_update(jc, job.resource_arn, reason)
    elif job.kind != "delete":
        mark_failed(jc, job.resource_arn, reason)


class _Heartbeat(threading.Thread):
    def __init__(self, jc: JobContext, job: Job, every: float) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{job.id}")
        self.jc, self.job, self.every = jc, job, every
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.every):
            try:
                self.jc.catalog.heartbeat(self.job.id, self.jc.worker)
            except Exception:  # a missed beat only risks a retry; never kill the job for it
                log.exception("heartbeat failed for job %s", self.job.id)


def execute(jc: JobContext, job: Job) -> None:
    beat = _Heartbeat(jc, job, max(jc.settings.job_lease_seconds / 4, 0.5))
    beat.start()
    try:
        HANDLERS[job.kind](jc, job)
    except Defer as d:
        with jc.catalog.write() as conn:
            Catalog.defer(conn, job.id, time.time() + d.seconds)
        return
    except JobFailed as exc:
        record_failure(jc, job, str(exc))
        with jc.catalog.write() as conn:
            Catalog.finish(conn, job.id, error=str(exc))
        return
    except Exception as exc:
        log.error(
            "job %s (%s %s) crashed:\n%s",
            job.id,
            job.kind,
            job.resource_arn,
            traceback.format_exc(),
        )
        reason = f"Internal error while running the job: {type(exc).__name__}: {exc}"
        record_failure(jc, job, reason)
        with jc.catalog.write() as conn:
            Catalog.finish(conn, job.id, error=reason)
        return
    finally:
        beat.done.set()
    with jc.catalog.write() as conn:
        Catalog.finish(conn, job.id)


def reap(jc: JobContext) -> None:
    """Retry or fail the jobs of workers that stopped heartbeating."""
    for job in jc.catalog.stale_jobs(jc.settings.job_lease_seconds):
        if job.attempts < jc.settings.job_max_attempts:
            log.warning("retrying job %s (%s): its worker stopped", job.id, job.kind)
            with jc.catalog.write() as conn:
                Catalog.requeue(conn, job.id)
            continue
        reason = (
            f"The worker running this job stopped ({job.attempts} attempts of "
            f"{jc.settings.job_max_attempts}); run it again."
        )
        record_failure(jc, job, reason)
        with jc.catalog.write() as conn:
            Catalog.finish(conn, job.id, error=reason)


def start_automatic_training(jc: JobContext) -> None:
    try:
        with jc.catalog.read() as conn:
            due = autotrain.any_due(conn, jc.settings)
        if due:
            with jc.catalog.write() as conn:
                started = autotrain.schedule(conn, jc.settings)
            for arn in started:
                log.info("automatic training started: %s", arn)
    except Exception:  # the schedule retries at the next check; never kill the worker
        log.exception("automatic training check failed")


def run(settings: Settings, stop: threading.Event, name: str | None = None) -> None:
    """Serve the queue until ``stop`` is set."""
    catalog = Catalog(settings.catalog_url)
    worker = name or f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
    jc = JobContext(settings=settings, catalog=catalog, worker=worker)
    last_reap = last_schedule = 0.0
    schedule_every = max(settings.poll_interval, min(5.0, settings.auto_training_delay / 4))
    try:
        while not stop.is_set():
            now = time.time()
            if now - last_reap > min(5.0, settings.job_lease_seconds / 2):
                reap(jc)
                last_reap = now
            if now - last_schedule > schedule_every:
                start_automatic_training(jc)
                last_schedule = now
            job = catalog.claim(worker)
            if job is None:
                stop.wait(settings.poll_interval)
                continue
            execute(jc, job)
    finally:
        catalog.dispose()


def _watch_parent(parent: int, stop: threading.Event) -> None:
    # A worker must not outlive the server that started it (kill -9 included).
    while not stop.wait(0.5):
        if os.getppid() != parent:
            os._exit(0)


def process_main(env: dict[str, str], parent: int, index: int) -> None:
    """Entry point of a worker process started by `pertinent serve`."""
    os.environ.update(env)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(message)s")
    settings = Settings.from_env()
    stop = threading.Event()
    threading.Thread(target=_watch_parent, args=(parent, stop), daemon=True).start()
    run(settings, stop, name=f"{socket.gethostname()}:{os.getpid()}:w{index}")
