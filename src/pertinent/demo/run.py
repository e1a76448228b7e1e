"""`pertinent demo`: the whole Personalize loop through boto3 against an embedded server."""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import polars as pl
import uvicorn
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from pertinent.api.app import create_app
from pertinent.config import Settings
from pertinent.demo.generate import DemoData, generate
from pertinent.server import prepare, start_workers

RECIPE = "arn:aws:personalize:::recipe/"
ROLE = "arn:aws:iam::000000000000:role/PersonalizeDemo"
METRIC_LABELS = {
    "coverage": "coverage",
    "mean_reciprocal_rank_at_25": "MRR@25",
    "normalized_discounted_cumulative_gain_at_5": "NDCG@5",
    "normalized_discounted_cumulative_gain_at_10": "NDCG@10",
    "normalized_discounted_cumulative_gain_at_25": "NDCG@25",
    "precision_at_5": "precision@5",
    "precision_at_10": "precision@10",
    "precision_at_25": "precision@25",
}


class EmbeddedServer:
    """uvicorn on a free loopback port in a thread, plus the job worker processes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=self.port,
            log_level="error",
            access_log=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.workers: list[Any] = []

    def __enter__(self) -> EmbeddedServer:
        prepare(self.settings)
        self.workers = start_workers(self.settings, max(self.settings.workers, 1))
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("the embedded server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        for p in self.workers:
            p.terminate()
        for p in self.workers:
            p.join(timeout=5)


def _wait(
    progress: Progress, task: Any, describe: Callable[..., Any], key: str, **arn: str
) -> dict[str, Any]:
    """Poll ``describe(**arn)[key]`` until ACTIVE, showing the status as it moves."""
    label = progress.tasks[task].fields["label"]
    while True:
        res: dict[str, Any] = describe(**arn)[key]
        status = res["status"]
        progress.update(task, description=f"{label}: {status}")
        if status == "ACTIVE":
            progress.update(task, completed=1)
            return res
        if status == "CREATE FAILED":
            raise RuntimeError(f"{label} failed: {res.get('failureReason')}")
        time.sleep(0.2)


def _step(progress: Progress, label: str) -> Any:
    return progress.add_task(label, total=1, label=label)


def run_flow(url: str, data: DemoData, console: Console) -> dict[str, Any]:
    """The "first campaign" notebook, with only endpoint_url and the data location changed."""
    session = boto3.Session(region_name="us-east-1")
    if session.get_credentials() is None:
        # A fresh machine has no AWS credentials; the embedded server accepts any.
        session = boto3.Session(
            aws_access_key_id="demo", aws_secret_access_key="demo", region_name="us-east-1"
        )
    pz = session.client("personalize", endpoint_url=url)
    rt = session.client("personalize-runtime", endpoint_url=url)
    out: dict[str, Any] = {}
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = _step(progress, "dataset group")
        group = pz.create_dataset_group(name="demo-shop")["datasetGroupArn"]
        _wait(progress, task, pz.describe_dataset_group, "datasetGroup", datasetGroupArn=group)
        for kind, schema, csv in (
            ("Interactions", data.interactions_schema, data.interactions_csv),
            ("Items", data.items_schema, data.items_csv),
            ("Users", data.users_schema, data.users_csv),
        ):
            task = _step(progress, f"{kind} dataset")
            schema_arn = pz.create_schema(name=f"demo-{kind.lower()}", schema=schema)["schemaArn"]
            ds = pz.create_dataset(
                name=f"demo-{kind.lower()}",
                schemaArn=schema_arn,
                datasetGroupArn=group,
                datasetType=kind,
            )["datasetArn"]
            _wait(progress, task, pz.describe_dataset, "dataset", datasetArn=ds)
            task = _step(progress, f"import {csv.name}")
            job = pz.create_dataset_import_job(
                jobName=f"demo-import-{kind.lower()}",
                datasetArn=ds,
                dataSource={"dataLocation": csv.resolve().as_uri()},
                roleArn=ROLE,
            )["datasetImportJobArn"]
            _wait(
                progress,
                task,
                pz.describe_dataset_import_job,
                "datasetImportJob",
                datasetImportJobArn=job,
            )
        for recipe in ("aws-popularity-count", "aws-sims"):
            task = _step(progress, f"train {recipe}")
            solution = pz.create_solution(
                name=f"demo-{recipe}", datasetGroupArn=group, recipeArn=RECIPE + recipe
            )["solutionArn"]
            _wait(progress, task, pz.describe_solution, "solution", solutionArn=solution)
            version = pz.create_solution_version(solutionArn=solution)["solutionVersionArn"]
            _wait(
                progress,
                task,
                pz.describe_solution_version,
                "solutionVersion",
                solutionVersionArn=version,
            )
            metrics = pz.get_solution_metrics(solutionVersionArn=version)["metrics"]
            task = _step(progress, f"deploy {recipe}")
            campaign = pz.create_campaign(
                name=f"demo-{recipe}", solutionVersionArn=version, minProvisionedTPS=1
            )["campaignArn"]
            _wait(progress, task, pz.describe_campaign, "campaign", campaignArn=campaign)
            out[recipe] = {"metrics": metrics, "campaign": campaign}

    user = next(iter(data.user_taste))
    popular = rt.get_recommendations(
        campaignArn=out["aws-popularity-count"]["campaign"], userId=user, numResults=10
    )["itemList"]
    seed_item = _a_popular_item(data)
    related = rt.get_recommendations(
        campaignArn=out["aws-sims"]["campaign"], itemId=seed_item, numResults=10
    )["itemList"]
    out["popular"] = [i["itemId"] for i in popular]
    out["seed_item"] = seed_item
    out["related"] = [i["itemId"] for i in related]
    return out


def _a_popular_item(data: DemoData) -> str:
    counts = (
        pl.read_csv(data.interactions_csv, columns=["ITEM_ID"])
        .group_by("ITEM_ID")
        .len()
        .sort(["len", "ITEM_ID"], descending=[True, False])
    )
    return str(counts["ITEM_ID"][0])


def _print(console: Console, data: DemoData, result: dict[str, Any]) -> None:
    items = pl.read_csv(data.items_csv).select("ITEM_ID", "CATEGORY_L1", "CATEGORY_L2", "PRICE")
    info = {r["ITEM_ID"]: r for r in items.iter_rows(named=True)}

    def table(title: str, ids: list[str]) -> Table:
        t = Table(title=title)
        for col in ("#", "ITEM_ID", "CATEGORY_L1", "CATEGORY_L2", "PRICE"):
            t.add_column(col)
        for rank, item in enumerate(ids, 1):
            r = info.get(item, {})
            t.add_row(
                str(rank),
                item,
                str(r.get("CATEGORY_L1", "")),
                str(r.get("CATEGORY_L2", "")),
                f"{r.get('PRICE', 0):.2f}",
            )
        return t

    seed = result["seed_item"]
    seed_info = info.get(seed, {})
    console.print(table("Most popular (aws-popularity-count)", result["popular"]))
    console.print(
        table(
            f"Related to {seed} — {seed_info.get('CATEGORY_L1')} / {seed_info.get('CATEGORY_L2')}"
            " (aws-sims)",
            result["related"],
        )
    )
    metrics = Table(title="Offline metrics (GetSolutionMetrics, Personalize's protocol)")
    metrics.add_column("metric")
    recipes = ("aws-popularity-count", "aws-sims")
    for recipe in recipes:
        metrics.add_column(recipe, justify="right")
    for key, label in METRIC_LABELS.items():
        metrics.add_row(
            label,
            *(f"{result[r]['metrics'].get(key, float('nan')):.4f}" for r in recipes),
        )
    console.print(metrics)


def run_demo(home: Path | None, users: int, items: int, seed: int) -> None:
    console = Console()
    root = home.absolute() if home else Path(tempfile.mkdtemp(prefix="pertinent-demo-"))
    settings = Settings.from_env().with_overrides(home=root / "server", poll_interval=0.05)
    console.print(f"[bold]Pertinent demo[/bold]: data and server files in {root}")
    data = generate(root / "data", users=users, items=items, seed=seed)
    console.print(
        f"Generated {data.n_interactions:,} interactions from {users:,} users on {items:,} items."
    )
    with EmbeddedServer(settings) as server:
        console.print(f"Embedded server at {server.url}; driving it with stock boto3.")
        result = run_flow(server.url, data, console)
    _print(console, data, result)
