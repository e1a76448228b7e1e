"""One training step of user-personalization's network, three ways, side by side.

    .venv/bin/python bench/train_step.py                 # bench/train.py's 1M model
    .venv/bin/python bench/train_step.py --items 100000  # a wider softmax

Times a full step (forward, backward, AdamW) of the transformer bench/train.py trains
(hidden_dimension 149, bptt 32, two blocks, 128 windows of 32 targets, the multi-horizon
loss over the next 8 targets, the full softmax over 5.8k items) with:

* ``autograd``: the textbook loss, ``log_softmax`` of ``q @ vec.T + b`` then ``gather``
  (what the recipes ran before ``recipes/_softmax.py``), float32;
* ``fused``: ``recipes/_softmax.catalogue_loss``, float32;
* ``fused+bf16``: the same with the products in bfloat16 (the transformer under
  autocast), what training uses where ``_torch.fast_bfloat16`` holds.

Rounds alternate between the three so that the host's noise falls on all alike; prints
the median and best milliseconds per step and the ratios to ``autograd``, and writes
bench/results/train_step.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from pertinent.recipes._softmax import catalogue_loss
from pertinent.recipes._torch import fast_bfloat16, reproducible
from pertinent.recipes.sequential import NetConfig, SequentialNet
from pertinent.recipes.user_personalization import _heads

RESULTS = Path(__file__).resolve().parent / "results" / "train_step.json"


def textbook_loss(
    q: torch.Tensor,
    vec: torch.Tensor,
    bias: torch.Tensor,
    label: torch.Tensor,
    future: torch.Tensor,
    future_weight: float,
) -> torch.Tensor:
    logp = torch.log_softmax(q @ vec.T + bias[None, :], dim=1)
    per_row = -logp.gather(1, label[:, None])[:, 0]
    has = future >= 0
    fut = torch.where(has, -logp.gather(1, future.clamp_min(0)), 0.0)
    return per_row + future_weight * fut.sum(1) / has.sum(1).clamp_min(1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--items", type=int, default=5_795)
    p.add_argument("--dim", type=int, default=149)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--bptt", type=int, default=32)
    p.add_argument("--batch", type=int, default=128, help="windows per step")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--steps", type=int, default=4, help="steps per round and variant")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    device = torch.device("cpu")
    horizon, future_weight = 8, 0.5
    with reproducible(0, device):
        cfg = NetConfig(
            n_items=args.items,
            dim=args.dim,
            max_len=args.bptt,
            layers=args.layers,
            heads=_heads(args.dim),
            dropout=0.2,
            gap_buckets=24,
        )
        net = SequentialNet(cfg)
        net.has_id.fill_(1.0)
        net.train()
        optim = torch.optim.AdamW(net.parameters(), lr=1e-3, foreach=True)
        g = torch.Generator().manual_seed(0)
        tokens = torch.randint(0, args.items, (args.batch, args.bptt), generator=g)
        gaps = torch.randint(0, 24, (args.batch, args.bptt), generator=g)
        n = args.batch * args.bptt
        label = torch.randint(0, args.items, (n,), generator=g)
        future = torch.randint(0, args.items, (n, horizon), generator=g)

        def step(kind: str) -> None:
            bf16 = kind == "fused+bf16"
            vec, bias = net.item_vectors()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                q = net.encode(tokens, vec, gaps=gaps).float().reshape(n, -1)
            if kind == "autograd":
                per_row = textbook_loss(q, vec, bias, label, future, future_weight)
            else:
                per_row = catalogue_loss(q, vec, bias, label, future, future_weight, bf16=bf16)
            optim.zero_grad(set_to_none=True)
            per_row.mean().backward()  # type: ignore[no-untyped-call]
            optim.step()

        kinds = ["autograd", "fused", "fused+bf16"]
        times: dict[str, list[float]] = {k: [] for k in kinds}

        def timed(kind: str) -> float:
            started = time.perf_counter()
            for _ in range(args.steps):
                step(kind)
            return (time.perf_counter() - started) / args.steps * 1000

        for kind in kinds:
            timed(kind)  # warm-up
        for _ in range(args.rounds):
            for kind in kinds:
                times[kind].append(timed(kind))
        threads = torch.get_num_threads()

    base = statistics.median(times["autograd"])
    rows = {}
    print(f"step of {n:,} targets x {args.items:,} items, d {args.dim}, {args.layers} blocks")
    print("| loss | median ms | best ms | median vs autograd |\n|---|---|---|---|")
    for kind in kinds:
        med, best = statistics.median(times[kind]), min(times[kind])
        rows[kind] = {"median_ms": med, "best_ms": best, "ratio_to_autograd": med / base}
        print(f"| {kind} | {med:.0f} | {best:.0f} | {med / base:.2f} |")
    native = fast_bfloat16(device)
    if not native:
        print("note: no native bfloat16 on this CPU: training uses `fused` here")
    report = {
        "shape": {**vars(args), "out": str(args.out), "targets_per_step": n},
        "steps": rows,
        "native_bfloat16": native,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "threads": threads,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
