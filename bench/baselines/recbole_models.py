"""RecBole SASRec and GRU4Rec as baselines, run in a virtual environment of their own.

RecBole 1.2.1 needs numpy 1.x and ray <= 2.6.3, which the main environment can't hold
(shared/DEPENDENCIES.md), so ``ensure_venv`` builds ``bench/.work/recbole-venv`` on demand
with exactly the pins that were verified to work together. A model is trained there in a
subprocess (``recbole_runner.py``) on **our** training split, exported as RecBole atomic
files, and the full score matrix of our queries comes back as an ``.npy`` file: our
evaluator ranks it with the same protocol as every other model; RecBole's own metrics are
never computed.

Same protocol as the other baselines: fit on ``split.train``, score ``split``'s queries.
RecBole always holds rows out of its ``.inter`` file for evaluation, so the export ends
every user's sequence with one dummy row (item token ``_``) and asks for
``LS: valid_only``: RecBole holds the dummies out and trains on every real row; the dummy
item's column is dropped on the way back. There is no early stopping (nothing to stop
on without peeking at our targets): training ends at ``max_epochs`` or the time budget.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from pertinent.evaluation.loo import LooSplit
from pertinent.recipes.base import Query, TrainingData

from .harness import ModelResult, loo_metrics, precomputed, queries_of

WORK = Path(__file__).resolve().parents[1] / ".work"
VENV = WORK / "recbole-venv"
RUNNER = Path(__file__).resolve().parent / "recbole_runner.py"
DUMMY = "_"
"""Item token of the held-out row that ends every exported sequence."""

# The set shared/DEPENDENCIES.md verified together; pandas 3 silently breaks RecBole's
# fillna(inplace=True), pyarrow 26 needs numpy 2, ray > 2.6.3 is refused by recbole.
PINS = (
    "numpy==1.26.4",
    "pandas==2.3.3",
    "setuptools==80.10.2",
    "torch==2.13.0",
    "recbole==1.2.1",
    "ray==2.6.3",
    "pyarrow==25.0.1",
)
# torch >= 2.6 loads checkpoints with weights_only=True, which RecBole's pickled configs fail.
ENV = {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
_MARKER = ".pertinent-pins"

__all__ = [
    "DUMMY",
    "ENV",
    "PINS",
    "RECBOLE_CONFIGS",
    "RecBoleRun",
    "RecBoleSettings",
    "ensure_venv",
    "export_split",
    "fingerprint",
    "python",
    "run_recbole",
    "run_recbole_baseline",
]


def python() -> Path:
    return VENV / "bin" / "python"


def ensure_venv(log: Any = print) -> float:
    """Build the RecBole venv unless a complete one is there; returns the seconds spent.

    The marker file (written last, after an import check) records the pins, so a build
    that was interrupted, or one made with other pins, is redone from scratch. pip's
    output goes to ``bench/.work/recbole-venv.log``.
    """
    marker = VENV / _MARKER
    if marker.exists() and marker.read_text().split() == list(PINS):
        return 0.0
    started = time.perf_counter()
    if VENV.exists():
        shutil.rmtree(VENV)
    WORK.mkdir(parents=True, exist_ok=True)
    log(f"building {VENV} ({' '.join(PINS)}) ...")
    base = getattr(sys, "_base_executable", sys.executable)
    with open(WORK / "recbole-venv.log", "w") as pip_log:
        subprocess.run([base, "-m", "venv", str(VENV)], check=True)
        pip = [str(python()), "-m", "pip", "install", "--no-input", *PINS]
        subprocess.run(pip, check=True, stdout=pip_log, stderr=subprocess.STDOUT)
    check = "import recbole, torch, numpy; print(recbole.__version__, numpy.__version__)"
    out = subprocess.run(
        [str(python()), "-c", check],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **ENV},
    )
    marker.write_text("\n".join(PINS) + "\n")
    seconds = time.perf_counter() - started
    log(f"RecBole venv ready in {seconds:.0f} s (recbole, numpy: {out.stdout.strip()})")
    return seconds


def _queries_arrays(queries: Sequence[Query]) -> tuple[npt.NDArray[np.int64], npt.NDArray[Any]]:
    lengths = np.fromiter((q.history.shape[0] for q in queries), dtype=np.int64)
    offsets = np.zeros(len(queries) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    items = (
        np.concatenate([q.history for q in queries]).astype(np.int64)
        if len(queries)
        else np.empty(0, dtype=np.int64)
    )
    return offsets, items


def export_split(directory: Path, name: str, train: TrainingData, queries: Sequence[Query]) -> None:
    """Write ``train`` as RecBole's ``<directory>/<name>/<name>.inter`` and the queries'
    histories as ``<directory>/queries.npz`` (CSR offsets + our item indices).

    Tokens are our dense indices as strings, so the runner maps RecBole's internal ids
    back to our columns. Rows keep our (user, time, file) order with a strictly increasing
    ``timestamp`` (the row number): RecBole sorts by time with an unstable sort, and equal
    timestamps would shuffle a sequence. Each user's rows end with one ``DUMMY`` row for
    RecBole to hold out (see the module docstring).
    """
    inter = train.interactions
    folder = directory / name
    folder.mkdir(parents=True, exist_ok=True)
    order = np.lexsort((np.arange(len(inter)), inter.timestamp, inter.user))
    users = inter.user[order].tolist()
    items = inter.item[order].tolist()
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    for row, (user, item) in enumerate(zip(users, items, strict=True)):
        lines.append(f"{user}\t{item}\t{len(lines) - 1}")
        if row + 1 == len(users) or users[row + 1] != user:
            lines.append(f"{user}\t{DUMMY}\t{len(lines) - 1}")
    (folder / f"{name}.inter").write_text("\n".join(lines) + "\n")
    offsets, hist = _queries_arrays(queries)
    np.savez(directory / "queries.npz", offsets=offsets, items=hist)
    (directory / "meta.json").write_text(json.dumps({"n_items": train.n_items}) + "\n")


def fingerprint(train: TrainingData, queries: Sequence[Query]) -> str:
    """A content hash of a training split and its queries, so cached results are reused
    only for exactly the same data."""
    h = hashlib.sha256()
    inter = train.interactions
    for array in (inter.user, inter.item, inter.timestamp):
        h.update(np.ascontiguousarray(array).tobytes())
    h.update(str(train.n_items).encode())
    offsets, hist = _queries_arrays(queries)
    h.update(offsets.tobytes() + hist.tobytes())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class RecBoleRun:
    """One finished training: the queries' score matrix, fit seconds, epochs run."""

    scores: npt.NDArray[np.float32]
    fit_seconds: float
    epochs: int
    stopped_by_budget: bool
    cached: bool


def run_recbole(
    model: str,
    config: Mapping[str, Any],
    seed: int,
    train: TrainingData,
    queries: Sequence[Query],
    *,
    time_budget_s: float = 0.0,
    threads: int = 1,
    timeout: float = 3600.0,
) -> RecBoleRun:
    """Train RecBole ``model`` with ``config`` on ``train``; score ``queries``.

    ``time_budget_s`` > 0 cuts training short at that wall time (mid-epoch). Results are
    cached under ``bench/.work/recbole/<fingerprint>/<model>-<hash of config, seed,
    budget>``: the same data, config, seed and budget are never trained twice.
    """
    base = WORK / "recbole" / fingerprint(train, queries)
    spec = [model, dict(config), seed, time_budget_s]
    tag = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    out = base / f"{model}-{tag}-s{seed}"
    done = out / "result.json"
    cached = done.exists()
    if not cached:
        if not (base / "meta.json").exists():
            export_split(base, "split", train, queries)
        out.mkdir(parents=True, exist_ok=True)
        job = {
            "model": model,
            "config": dict(config),
            "seed": seed,
            "data_path": str(base),
            "dataset": "split",
            "out": str(out),
            "time_budget_s": time_budget_s,
            "threads": threads,
        }
        (out / "job.json").write_text(json.dumps(job, indent=2) + "\n")
        # One intra-op thread: with another process on the second core, torch's two-thread
        # kernels ran ~10x slower than one thread here (8.9 s vs 83 s for one epoch).
        env = {**os.environ, **ENV, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": str(threads)}
        with open(out / "log.txt", "w") as logfile:
            proc = subprocess.run(
                [str(python()), str(RUNNER), str(out / "job.json")],
                stdout=logfile,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=out,
                timeout=timeout,
            )
        if proc.returncode != 0 or not done.exists():
            tail = (out / "log.txt").read_text()[-3000:]
            raise RuntimeError(f"RecBole {model} failed (rc {proc.returncode}):\n{tail}")
    result = json.loads(done.read_text())
    return RecBoleRun(
        scores=np.load(out / "scores.npy"),
        fit_seconds=float(result["fit_seconds"]),
        epochs=int(result["epochs"]),
        stopped_by_budget=bool(result["stopped_by_budget"]),
        cached=cached,
    )


@dataclass(frozen=True)
class RecBoleSettings:
    """How much RecBole may spend; the defaults keep a full benchmark near 45 minutes.

    RecBole re-encodes every prefix of every sequence as its own training sample, so an
    epoch of SASRec on ML-100K costs minutes on this 2-core box: the 12-point tuning of
    the other baselines (times 3 seeds, 2 models, 4 data sets) would take hours. By
    default each model trains once per data set with ``RECBOLE_CONFIGS``' first (RecBole's
    default) config, for at most ``budget_s`` seconds; the other seeds only re-draw the
    evaluator's tie-break. ``configs`` > 1 tunes on the validation split (one training per
    config), ``train_seeds`` > 1 retrains with new init seeds. Results are cached, so a
    longer budget is paid once.
    """

    budget_s: float = 120.0
    configs: int = 1
    train_seeds: int = 1
    max_epochs: int = 50


# Shared by every config: RecBole's defaults except where 2 CPU cores force a change.
# Batch 256 instead of 2048 gives 8x more updates per (equally expensive) epoch, which is
# what counts under a time budget; 20 items of history instead of 50 make an epoch ~2.5x
# cheaper, and LOO rewards recency (item-kNN's best history is 1-10 items here).
RECBOLE_BASE: dict[str, Any] = {
    "train_batch_size": 256,
    "learning_rate": 1e-3,
    "MAX_ITEM_LIST_LENGTH": 20,
}
RECBOLE_CONFIGS: dict[str, list[dict[str, Any]]] = {
    "SASRec": [
        {"hidden_dropout_prob": 0.5, "attn_dropout_prob": 0.5},  # RecBole's default
        {"hidden_dropout_prob": 0.2, "attn_dropout_prob": 0.2},
        {"hidden_dropout_prob": 0.2, "attn_dropout_prob": 0.2, "learning_rate": 3e-3},
    ],
    "GRU4Rec": [
        {"dropout_prob": 0.3},  # RecBole's default
        {"dropout_prob": 0.1},
        {"dropout_prob": 0.3, "learning_rate": 3e-3},
    ],
}


def run_recbole_baseline(
    model: str,
    val: LooSplit,
    test: LooSplit,
    seeds: Sequence[int],
    settings: RecBoleSettings,
    log: Any = print,
) -> ModelResult:
    """RecBole ``model`` on the LOO protocol: optional tuning on the validation split,
    then training on the test split's training data and scoring its queries."""
    result = ModelResult(f"recbole-{model.lower()}", "recbole")
    common = {**RECBOLE_BASE, "epochs": settings.max_epochs}
    configs = RECBOLE_CONFIGS[model][: max(settings.configs, 1)]
    started = time.perf_counter()
    trials: list[dict[str, Any]] = []
    if len(configs) > 1:
        val_queries = queries_of(val)
        for config in configs:
            run = run_recbole(
                model, {**common, **config}, seeds[0], val.train, val_queries,
                time_budget_s=settings.budget_s,
            )  # fmt: skip
            metrics = loo_metrics(precomputed(run.scores, val), val, seed=seeds[0])
            trials.append({"params": config, "fit_seconds": run.fit_seconds,
                           "epochs": run.epochs, "cached": run.cached, **metrics})  # fmt: skip
        chosen = max(trials, key=lambda t: t["ndcg@10"])["params"]
    else:
        chosen = configs[0]
    result.params = {**common, **chosen}
    test_queries = queries_of(test)
    runs: list[RecBoleRun] = []
    for i, seed in enumerate(seeds):
        if i < max(settings.train_seeds, 1):
            runs.append(
                run_recbole(
                    model, result.params, seed, test.train, test_queries,
                    time_budget_s=settings.budget_s,
                )
            )  # fmt: skip
            result.fit_seconds.append(runs[-1].fit_seconds)
        # Past train_seeds, the last training is reused: only the tie-break seed changes.
        scorer = precomputed(runs[-1].scores, test)
        result.loo.append(loo_metrics(scorer, test, seed=seed))
    result.tuning = {
        "trials": len(trials),
        "seconds": time.perf_counter() - started,
        "points": trials,
        "budget_s": settings.budget_s,
        "epochs": [r.epochs for r in runs],
        "stopped_by_budget": [r.stopped_by_budget for r in runs],
        "cached": [r.cached for r in runs],
    }
    first = runs[0]
    result.note = (
        f"{first.epochs} epoch(s) in {first.fit_seconds:.0f} s"
        + (f" (cut at the {settings.budget_s:.0f} s budget)" if first.stopped_by_budget else "")
        + (f"; {len(trials)} configs tuned" if trials else "; RecBole's default config, untuned")
        + (f"; {len(runs)} training(s), other seeds re-draw ties only"
           if len(runs) < len(seeds) else "")
        + ("; cached" if first.cached else "")
        + "; LOO only"
    )  # fmt: skip
    log(f"  {result.name}: {result.note}")
    return result
