"""Production shape: the catalog in PostgreSQL, jobs run by separate `pertinent worker`s."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pertinent.demo.generate import generate
from pertinent.testing import (
    ServerProcess,
    create_dataset,
    create_group,
    deploy,
    import_data,
    train,
)


@pytest.fixture
def workers(postgres_url: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {
        **os.environ,
        "PERTINENT_DATABASE_URL": postgres_url,
        "PERTINENT_HOME": str(tmp_path / "home"),
        "PERTINENT_POLL_INTERVAL": "0.05",
    }
    log = (tmp_path / "workers.log").open("ab")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "pertinent", "worker"], env=env, stdout=log, stderr=log
        )
        for _ in range(2)
    ]
    yield env
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(timeout=20)
    log.close()


def test_flow_on_postgres_with_separate_workers(workers: dict[str, str], tmp_path: Path) -> None:
    data = generate(tmp_path / "data", users=800, items=200, seed=11)
    env = {
        "PERTINENT_DATABASE_URL": workers["PERTINENT_DATABASE_URL"],
        "PERTINENT_WORKERS": "0",  # the server only serves; the two workers run the jobs
    }
    with ServerProcess(Path(workers["PERTINENT_HOME"]), env=env, workers=0) as server:
        pz: Any = server.client("personalize")
        rt: Any = server.client("personalize-runtime")
        group = create_group(pz, "pg-shop")
        ds = create_dataset(pz, group, "pg-shop", "Interactions", data.interactions_schema)
        assert import_data(pz, ds, "pg-shop", data.interactions_csv.as_uri())["status"] == "ACTIVE"
        versions = [train(pz, group, f"pg-{r}", r) for r in ("aws-sims", "aws-popularity-count")]
        assert all(v["status"] == "ACTIVE" for v in versions), versions
        campaign = deploy(pz, "pg-sims", versions[0]["solutionVersionArn"])
        item = next(iter(data.item_category))
        items = rt.get_recommendations(campaignArn=campaign, itemId=item)["itemList"]
        assert len(items) == 25
        listed = pz.list_solutions(datasetGroupArn=group)["solutions"]
        assert {s["name"] for s in listed} == {"pg-aws-sims", "pg-aws-popularity-count"}
