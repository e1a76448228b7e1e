"""Jobs survive their worker: a kill -9 mid-training is retried or failed after restart."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from pertinent.config import Settings
from pertinent.demo.generate import generate
from pertinent.server import prepare
from pertinent.store.catalog import Catalog, Resource, jobs
from pertinent.testing import ServerProcess, create_dataset, create_group, import_data, wait_status

FAST_REAP = {"PERTINENT_JOB_LEASE_SECONDS": "2", "PERTINENT_JOB_MAX_ATTEMPTS": "2"}


def test_training_killed_mid_job_is_retried_after_restart(tmp_path: Path) -> None:
    data = generate(tmp_path / "data", users=40_000, items=8_000, seed=5)
    server = ServerProcess(tmp_path / "home", env=FAST_REAP).start()
    try:
        pz = server.client("personalize")
        group = create_group(pz, "recovery")
        ds = create_dataset(pz, group, "recovery", "Interactions", data.interactions_schema)
        assert import_data(pz, ds, "recovery", data.interactions_csv.as_uri())["status"] == "ACTIVE"
        solution = pz.create_solution(
            name="recovery",
            datasetGroupArn=group,
            recipeArn="arn:aws:personalize:::recipe/aws-sims",
        )["solutionArn"]
        wait_status(lambda: pz.describe_solution(solutionArn=solution)["solution"])
        version = pz.create_solution_version(solutionArn=solution)["solutionVersionArn"]

        def describe() -> dict[str, Any]:
            return dict(pz.describe_solution_version(solutionVersionArn=version)["solutionVersion"])

        wait_status(describe, ("CREATE IN_PROGRESS", "ACTIVE"), timeout=120, interval=0.02)
        status = describe()["status"]
        if status == "ACTIVE":
            pytest.fail("training finished before it could be interrupted; enlarge the data")
        server.stop(kill=True)  # kill -9: no cleanup, the job row stays "running"
    finally:
        server.stop()

    time.sleep(1.0)  # the orphaned worker notices its parent is gone and exits
    with ServerProcess(tmp_path / "home", env=FAST_REAP) as again:
        pz = again.client("personalize")
        done = wait_status(
            lambda: pz.describe_solution_version(solutionVersionArn=version)["solutionVersion"],
            timeout=300,
        )
        assert done["status"] == "ACTIVE", done
        assert set(pz.get_solution_metrics(solutionVersionArn=version)["metrics"])


def test_a_job_out_of_attempts_fails_with_a_reason(tmp_path: Path) -> None:
    """A job whose worker died on its last attempt fails its resource, never hangs."""
    settings = Settings(home=tmp_path / "home")
    prepare(settings)
    arn = "arn:aws:personalize:us-east-1:000000000000:dataset-group/orphan"
    catalog = Catalog(settings.catalog_url)
    with catalog.write() as conn:
        now = time.time()
        Catalog.insert(
            conn,
            Resource(
                arn=arn,
                account_id="000000000000",
                region="us-east-1",
                kind="dataset-group",
                name="orphan",
                status="CREATE IN_PROGRESS",
                created_at=now,
                updated_at=now,
                doc={"name": "orphan", "datasetGroupArn": arn},
                group_arn=arn,
            ),
        )
        job_id = Catalog.enqueue(conn, "activate", arn)
        conn.execute(
            jobs.update()
            .where(jobs.c.id == job_id)
            .values(state="running", worker="dead:1", heartbeat_at=now - 3600, attempts=2)
        )
    catalog.dispose()
    with ServerProcess(tmp_path / "home", env=FAST_REAP) as server:
        pz = server.client("personalize")
        group = wait_status(
            lambda: pz.describe_dataset_group(datasetGroupArn=arn)["datasetGroup"], timeout=30
        )
        assert group["status"] == "CREATE FAILED"
        assert "worker" in group["failureReason"] and "2 attempts" in group["failureReason"]
