"""Settings, read once from the environment (CLI flags override by passing values).

Every setting has an environment variable ``PERTINENT_<NAME>`` and a one-line
meaning; ``SETTINGS_HELP`` is the single list the README and ``--help`` quote.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

SETTINGS_HELP: dict[str, str] = {
    "HOME": "data directory: catalog, dataset parts, model files (default ./pertinent-data)",
    "DATABASE_URL": "catalog database URL; postgresql://... switches from the embedded SQLite file",
    "ACCOUNT_ID": "the 12-digit account id put in every ARN (default 000000000000)",
    "REGION": "region used when a request carries no SigV4 credential scope (default us-east-1)",
    "S3_ENDPOINT_URL": "endpoint of the S3-compatible store for s3:// data locations",
    "WORKERS": "job worker processes started by `pertinent serve` (default 1; 0 = none)",
    "HTTP_PROCESSES": "processes answering HTTP on the one port (default 1); each loads the "
    "models it serves and scores on its own core",
    "BATCH_WAIT_MS": "milliseconds a free scoring thread waits under load for a fuller batch "
    "of GetRecommendations (default 1, at most 50; 0 = none)",
    "POLL_INTERVAL": "seconds an idle worker waits between queue polls (default 0.1)",
    "JOB_LEASE_SECONDS": "a running job whose worker is silent this long is retried (default 60)",
    "JOB_MAX_ATTEMPTS": "attempts before a job whose worker died is failed (default 2)",
    "AUTO_TRAINING_DELAY": "seconds from CreateSolution to its first automatic run (default 3600)",
    "AUTO_TRAINING_DAY": "seconds in a day of autoTrainingConfig rate(N days) (default 86400)",
    "TORCH_THREADS": "intra-op threads a training uses (default: every core)",
    "MAX_EPOCHS": "cap on the training epochs of neural recipes (default: chosen from the data)",
    "MAX_TRAINING_MINUTES": "wall-clock cap on a neural recipe's training; the best epoch by "
    "then is kept (default: none, so that a fit is reproducible)",
}


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"PERTINENT_{name}", default)


def _batch_wait_ms(raw: str) -> float:
    value = float(raw)
    if not 0.0 <= value <= 50.0:  # NaN fails too: a request must never wait unboundedly
        raise ValueError(f"PERTINENT_BATCH_WAIT_MS must be between 0 and 50, not {raw}")
    return value


@dataclass(frozen=True)
class Settings:
    home: Path = field(default_factory=lambda: Path("pertinent-data"))
    database_url: str | None = None
    account_id: str = "000000000000"
    region: str = "us-east-1"
    s3_endpoint_url: str | None = None
    workers: int = 1
    http_processes: int = 1
    batch_wait_ms: float = 1.0
    poll_interval: float = 0.1
    job_lease_seconds: float = 60.0
    job_max_attempts: int = 2
    max_epochs: int | None = None
    max_training_minutes: float | None = None
    auto_training_delay: float = 3600.0
    auto_training_day: float = 86400.0

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            home=Path(_env("HOME", "pertinent-data") or "pertinent-data").absolute(),
            database_url=_env("DATABASE_URL"),
            account_id=_env("ACCOUNT_ID", "000000000000") or "000000000000",
            region=_env("REGION", "us-east-1") or "us-east-1",
            s3_endpoint_url=_env("S3_ENDPOINT_URL"),
            workers=int(_env("WORKERS", "1") or "1"),
            http_processes=max(1, int(_env("HTTP_PROCESSES", "1") or "1")),
            batch_wait_ms=_batch_wait_ms(_env("BATCH_WAIT_MS") or "1"),
            poll_interval=float(_env("POLL_INTERVAL", "0.1") or "0.1"),
            job_lease_seconds=float(_env("JOB_LEASE_SECONDS", "60") or "60"),
            job_max_attempts=int(_env("JOB_MAX_ATTEMPTS", "2") or "2"),
            max_epochs=int(epochs) if (epochs := _env("MAX_EPOCHS")) else None,
            max_training_minutes=(
                float(minutes) if (minutes := _env("MAX_TRAINING_MINUTES")) else None
            ),
            auto_training_delay=float(_env("AUTO_TRAINING_DELAY", "3600") or "3600"),
            auto_training_day=float(_env("AUTO_TRAINING_DAY", "86400") or "86400"),
        )

    def with_overrides(self, **values: object) -> Settings:
        return replace(self, **{k: v for k, v in values.items() if v is not None})  # type: ignore[arg-type]

    @property
    def catalog_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'catalog.db'}"

    @property
    def data_dir(self) -> Path:
        return self.home / "datasets"

    @property
    def model_dir(self) -> Path:
        return self.home / "models"

    def to_env(self) -> dict[str, str]:
        """The environment that reproduces these settings in a child process."""
        env = {
            "PERTINENT_HOME": str(self.home),
            "PERTINENT_ACCOUNT_ID": self.account_id,
            "PERTINENT_REGION": self.region,
            "PERTINENT_WORKERS": str(self.workers),
            "PERTINENT_HTTP_PROCESSES": str(self.http_processes),
            "PERTINENT_BATCH_WAIT_MS": str(self.batch_wait_ms),
            "PERTINENT_POLL_INTERVAL": str(self.poll_interval),
            "PERTINENT_JOB_LEASE_SECONDS": str(self.job_lease_seconds),
            "PERTINENT_JOB_MAX_ATTEMPTS": str(self.job_max_attempts),
            "PERTINENT_AUTO_TRAINING_DELAY": str(self.auto_training_delay),
            "PERTINENT_AUTO_TRAINING_DAY": str(self.auto_training_day),
        }
        if self.database_url:
            env["PERTINENT_DATABASE_URL"] = self.database_url
        if self.s3_endpoint_url:
            env["PERTINENT_S3_ENDPOINT_URL"] = self.s3_endpoint_url
        if self.max_epochs is not None:
            env["PERTINENT_MAX_EPOCHS"] = str(self.max_epochs)
        if self.max_training_minutes is not None:
            env["PERTINENT_MAX_TRAINING_MINUTES"] = str(self.max_training_minutes)
        return env
