"""What a job handler receives and the ways it can end."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pertinent.config import Settings
from pertinent.store.catalog import Catalog, Job


@dataclass(frozen=True)
class JobContext:
    settings: Settings
    catalog: Catalog
    worker: str


class Defer(Exception):
    """The job cannot run yet (a resource it needs is still being created); retry later."""

    def __init__(self, seconds: float, why: str) -> None:
        super().__init__(why)
        self.seconds = seconds


class JobFailed(Exception):
    """The job failed for a reason the user should read in ``failureReason``."""


JobHandler = Callable[[JobContext, Job], None]
HANDLERS: dict[str, JobHandler] = {}


def handler(kind: str) -> Callable[[JobHandler], JobHandler]:
    def register(fn: JobHandler) -> JobHandler:
        HANDLERS[kind] = fn
        return fn

    return register
