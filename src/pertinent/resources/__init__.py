"""The control plane: one module per resource family, each registering its operations."""

from pertinent.resources import (  # noqa: F401  (importing registers the operations)
    campaigns,
    dataset_groups,
    datasets,
    event_trackers,
    filters,
    recipes,
    schemas,
    solutions,
    tags,
)
from pertinent.resources._common import OPERATIONS, Context

__all__ = ["OPERATIONS", "Context"]
