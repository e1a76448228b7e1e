"""Helpers for driving a real `pertinent serve` from tests, benchmarks and notebooks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """`pertinent serve` in a child process, exactly as a user would start it."""

    def __init__(
        self,
        home: Path,
        env: dict[str, str] | None = None,
        workers: int = 1,
        port: int | None = None,
        own_group: bool = False,
    ) -> None:
        self.home = home
        # In its own process group, the server and its workers can be killed together
        # (``kill_group``), as a machine that loses power would lose them.
        self.own_group = own_group
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "PERTINENT_HOME": str(home),
            "PERTINENT_WORKERS": str(workers),
            "PERTINENT_POLL_INTERVAL": "0.05",
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = home / "server.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 60) -> ServerProcess:
        self.home.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pertinent", "serve", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=self.own_group,
            )
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=1) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        raise RuntimeError(f"server did not start:\n{self.log.read_text()}")

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def kill_group(self) -> None:
        """SIGKILL the server and every process it started (needs ``own_group``)."""
        assert self.proc is not None and self.own_group, "start with own_group=True"
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.proc = None

    def client(self, service: str, region: str = "us-east-1") -> Any:
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=region,
            aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
            aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        )

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_status(
    describe: Callable[[], dict[str, Any]],
    done: tuple[str, ...] = ("ACTIVE", "CREATE FAILED"),
    timeout: float = 300,
    interval: float = 0.1,
) -> dict[str, Any]:
    """Poll a Describe* call until its resource reaches one of ``done``."""
    deadline = time.time() + timeout
    while True:
        res = describe()
        if res.get("status") in done:
            return res
        if time.time() > deadline:
            raise TimeoutError(f"still {res.get('status')} after {timeout}s: {res}")
        time.sleep(interval)


# -- the "first campaign" notebook flow, step by step --------------------------------

RECIPE = "arn:aws:personalize:::recipe/"
ROLE = "arn:aws:iam::000000000000:role/PersonalizeRole"


def create_group(pz: Any, name: str, **kwargs: Any) -> str:
    arn: str = pz.create_dataset_group(name=name, **kwargs)["datasetGroupArn"]
    wait_status(lambda: pz.describe_dataset_group(datasetGroupArn=arn)["datasetGroup"])
    return arn


def create_dataset(pz: Any, group: str, name: str, dataset_type: str, schema: str) -> str:
    schema_arn = pz.create_schema(name=f"{name}-schema", schema=schema)["schemaArn"]
    arn: str = pz.create_dataset(
        name=name, schemaArn=schema_arn, datasetGroupArn=group, datasetType=dataset_type
    )["datasetArn"]
    wait_status(lambda: pz.describe_dataset(datasetArn=arn)["dataset"])
    return arn


def import_data(
    pz: Any, dataset: str, name: str, location: str, mode: str = "FULL", timeout: float = 600
) -> dict[str, Any]:
    arn = pz.create_dataset_import_job(
        jobName=name,
        datasetArn=dataset,
        dataSource={"dataLocation": location},
        roleArn=ROLE,
        importMode=mode,
    )["datasetImportJobArn"]
    return wait_status(
        lambda: pz.describe_dataset_import_job(datasetImportJobArn=arn)["datasetImportJob"],
        timeout=timeout,
    )


def train(
    pz: Any,
    group: str,
    name: str,
    recipe: str,
    config: dict[str, Any] | None = None,
    timeout: float = 1200,
    **kwargs: Any,
) -> dict[str, Any]:
    """CreateSolution + CreateSolutionVersion; returns the version once it settles."""
    if config:
        kwargs["solutionConfig"] = config
    solution = pz.create_solution(
        name=name, datasetGroupArn=group, recipeArn=RECIPE + recipe, **kwargs
    )["solutionArn"]
    wait_status(lambda: pz.describe_solution(solutionArn=solution)["solution"])
    version = pz.create_solution_version(solutionArn=solution)["solutionVersionArn"]
    return wait_status(
        lambda: pz.describe_solution_version(solutionVersionArn=version)["solutionVersion"],
        timeout=timeout,
    )


def deploy(pz: Any, name: str, version_arn: str, config: dict[str, Any] | None = None) -> str:
    kwargs: dict[str, Any] = {"name": name, "solutionVersionArn": version_arn}
    if config:
        kwargs["campaignConfig"] = config
    arn: str = pz.create_campaign(**kwargs)["campaignArn"]
    campaign = wait_status(lambda: pz.describe_campaign(campaignArn=arn)["campaign"])
    if campaign["status"] != "ACTIVE":
        raise RuntimeError(f"campaign {arn} failed: {campaign.get('failureReason')}")
    return arn
