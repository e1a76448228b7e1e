"""The automatic-training schedule: first run, skipped first run, rate, bad expressions."""

from __future__ import annotations

from typing import Any

import pytest

from pertinent.config import Settings
from pertinent.jobs.autotrain import _due, rate_days
from pertinent.store.catalog import Resource

SETTINGS = Settings(auto_training_delay=3600.0, auto_training_day=86400.0)
T0 = 1_700_000_000.0


def _res(kind: str, created: float, **doc: Any) -> Resource:
    return Resource(
        arn=f"arn:{kind}:{created}", account_id="0", region="us-east-1", kind=kind, name="n",
        status="ACTIVE", created_at=created, updated_at=created, doc=doc,
    )  # fmt: skip


def test_first_run_an_hour_after_creation() -> None:
    assert _due(_res("solution", T0), [], SETTINGS) == T0 + 3600


def test_a_manual_version_within_the_hour_replaces_the_first_run() -> None:
    manual = _res("solution-version", T0 + 60)
    assert _due(_res("solution", T0), [manual], SETTINGS) == T0 + 3600 + 7 * 86400


def test_then_every_n_days() -> None:
    config = {"autoTrainingConfig": {"schedulingExpression": "rate(3 days)"}}
    solution = _res("solution", T0, solutionConfig=config, _lastAutoTrainingAt=T0 + 5000)
    assert _due(solution, [], SETTINGS) == T0 + 5000 + 3 * 86400


@pytest.mark.parametrize("expr", ["rate(0 days)", "rate(31 days)", "rate(7 hours)", "7 days"])
def test_bad_expressions_name_the_rule(expr: str) -> None:
    with pytest.raises(ValueError, match=r"rate\(N days\) with N from 1 to 30"):
        rate_days({"autoTrainingConfig": {"schedulingExpression": expr}})


def test_default_and_singular() -> None:
    assert rate_days(None) == 7
    assert rate_days({"autoTrainingConfig": {"schedulingExpression": "rate(1 day)"}}) == 1
