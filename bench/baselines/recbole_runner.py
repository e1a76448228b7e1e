"""Train one RecBole sequential model and write the score matrix (runs in the RecBole venv).

    bench/.work/recbole-venv/bin/python recbole_runner.py JOB.json

Only RecBole, torch and numpy 1.x are importable here (not pertinent). The job file names
the exported split (``recbole_models.export_split``), the model, its config, seed and
time budget, and an output folder, which receives ``scores.npy`` (float32, one row per
query, one column per *our* item index) and ``result.json`` (fit seconds, epochs).
Nothing is evaluated here: no validation, no RecBole metrics.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

DUMMY = "_"  # the held-out last row of every exported sequence (recbole_models.DUMMY)


class _OverBudget(Exception):
    """Raised at the start of an epoch once the time budget is spent."""


class _Budgeted:
    """A training loader that stops yielding batches (after the first) past a deadline, so
    the epoch that crosses the budget ends early instead of finishing (an epoch of SASRec
    can take minutes here). Everything else is the wrapped loader's."""

    def __init__(self, loader: Any, deadline: float) -> None:
        self._loader = loader
        self._deadline = deadline

    def __iter__(self) -> Any:
        for index, batch in enumerate(self._loader):
            if index and time.perf_counter() > self._deadline:
                return
            yield batch

    def __len__(self) -> int:
        return len(self._loader)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


def main(job_path: str) -> None:
    import numpy as np
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.data.interaction import Interaction
    from recbole.trainer import Trainer
    from recbole.utils import get_model, init_logger, init_seed

    job: dict[str, Any] = json.loads(Path(job_path).read_text())
    out = Path(job["out"])
    data_path = Path(job["data_path"])
    n_items = int(json.loads((data_path / "meta.json").read_text())["n_items"])
    torch.set_num_threads(int(job.get("threads", 1)))

    config_dict: dict[str, Any] = {
        "data_path": str(data_path),
        "checkpoint_dir": str(out / "saved"),
        "seed": int(job["seed"]),
        "reproducibility": True,
        "use_gpu": False,
        "device": "cpu",
        "show_progress": False,
        "state": "INFO",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        # Holds out each user's last row, the dummy; every real row is trained on.
        "eval_args": {
            "split": {"LS": "valid_only"},
            "order": "TO",
            "group_by": "user",
            "mode": "full",
        },
        "train_neg_sample_args": None,
        "loss_type": "CE",
        "log_wandb": False,
    }
    config_dict.update(job["config"])
    config = Config(model=job["model"], dataset=job["dataset"], config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset = create_dataset(config)
    train_data, _, _ = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data.dataset).to(config["device"])

    class BudgetTrainer(Trainer):  # type: ignore[misc]
        deadline = float("inf")

        def _train_epoch(self, train_data: Any, epoch_idx: int, *args: Any, **kw: Any) -> Any:
            if time.perf_counter() > self.deadline:
                raise _OverBudget
            loader = _Budgeted(train_data, self.deadline)
            return super()._train_epoch(loader, epoch_idx, *args, **kw)

    trainer = BudgetTrainer(config, model)
    budget = float(job.get("time_budget_s", 0.0))
    started = time.perf_counter()
    if budget > 0:
        trainer.deadline = started + budget
    stopped_by_budget = False
    try:
        # RecBole only stops on epochs (no validation data, so no early stopping); the
        # time budget cuts the epoch that crosses it short and ends training there.
        trainer.fit(train_data, None, saved=False, show_progress=False)
    except _OverBudget:
        stopped_by_budget = True
    fit_seconds = time.perf_counter() - started
    epochs = len(trainer.train_loss_dict)
    stopped_by_budget = stopped_by_budget or fit_seconds > budget > 0
    model.eval()

    # RecBole id <-> our index: tokens are our indices as strings; id 0 is [PAD].
    tokens = list(dataset.field2id_token["item_id"])
    known = [i for i, t in enumerate(tokens) if i > 0 and t != DUMMY]
    ours = np.array([int(tokens[i]) for i in known], dtype=np.int64)
    to_recbole = np.zeros(n_items, dtype=np.int64)
    to_recbole[ours] = known
    max_len = int(config["MAX_ITEM_LIST_LENGTH"])

    with np.load(data_path / "queries.npz") as arrays:
        offsets, items = arrays["offsets"], arrays["items"]
    n = offsets.shape[0] - 1
    scores = np.empty((n, n_items), dtype=np.float32)
    for start in range(0, n, 1024):
        stop = min(start + 1024, n)
        seq = np.zeros((stop - start, max_len), dtype=np.int64)
        lengths = np.ones(stop - start, dtype=np.int64)
        for r, q in enumerate(range(start, stop)):
            hist = to_recbole[items[offsets[q] : offsets[q + 1]]]
            hist = hist[hist > 0][-max_len:]  # items RecBole never saw are dropped
            seq[r, : hist.shape[0]] = hist
            lengths[r] = max(hist.shape[0], 1)  # an empty history reads the [PAD] item
        batch = Interaction(
            {
                model.ITEM_SEQ: torch.from_numpy(seq),
                model.ITEM_SEQ_LEN: torch.from_numpy(lengths),
            }
        )
        with torch.no_grad():
            full = model.full_sort_predict(batch).reshape(stop - start, -1).numpy()
        # Items RecBole never saw in training rank below every item it knows.
        block = np.repeat(full[:, known].min(axis=1, keepdims=True) - 1.0, n_items, axis=1)
        block[:, ours] = full[:, known]
        scores[start:stop] = block
    np.save(out / "scores.npy", scores)

    result = {
        "fit_seconds": fit_seconds,
        "epochs": epochs,
        "stopped_by_budget": stopped_by_budget,
        "recbole_items": len(known),
        "train_samples": len(train_data.dataset),
    }
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
