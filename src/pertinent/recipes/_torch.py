"""PyTorch plumbing shared by the neural recipes: device choice, seeding, threads.

Training must be reproducible (the recipe contract: same data and seed, same model),
so a fit runs inside ``reproducible(seed)``: it seeds torch, turns on deterministic
algorithms and pins the intra-op thread count (a float reduction split over a different
number of threads sums in a different order), then restores the process-wide settings
it changed, since the training worker and the server share the process with others.

Device: an explicit choice wins, then ``PERTINENT_DEVICE`` (``cpu``, ``cuda``,
``cuda:1``...), then CUDA when present, else the CPU. Nothing requires a GPU.

Precision: training multiplies in bfloat16 (weights, optimiser and the loss's
reductions stay float32) where the hardware has native bfloat16 dot products
(``fast_bfloat16``): 2.7x the float32 matrix-product rate on a 2-core AVX512-BF16
host, and the leave-last-out figures unchanged at the fourth decimal. Elsewhere
bfloat16 is emulated, slower than float32, so training stays float32 there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from pertinent.recipes._cpu import cpu_field

__all__ = ["choose_device", "fast_bfloat16", "reproducible", "thread_count"]

_DEVICE_ENV = "PERTINENT_DEVICE"
_THREADS_ENV = "PERTINENT_TORCH_THREADS"


def choose_device(explicit: str | None = None) -> torch.device:
    """The training device: ``explicit`` > ``$PERTINENT_DEVICE`` > cuda if available > cpu."""
    name = explicit or os.environ.get(_DEVICE_ENV, "").strip()
    if name:
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {name!r} was asked for but CUDA is not available")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def fast_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bfloat16 natively (CUDA from Ampere on; x86 CPUs
    with AVX512-BF16 or AMX, read from /proc/cpuinfo: torch exposes no such test)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    if device.type != "cpu":
        return False
    return bool(set(cpu_field("flags").split()) & {"avx512_bf16", "amx_bf16"})


def thread_count() -> int:
    """Intra-op threads for training: ``$PERTINENT_TORCH_THREADS``, else every core."""
    configured = os.environ.get(_THREADS_ENV, "").strip()
    if configured:
        return max(1, int(configured))
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


@contextmanager
def reproducible(seed: int, device: torch.device, threads: int | None = None) -> Iterator[None]:
    """Seed torch and make its kernels deterministic for the duration of the block."""
    previous_threads = torch.get_num_threads()
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    previous_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    if device.type == "cuda":
        # cuBLAS needs a fixed workspace to be deterministic; it reads this at first use.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.set_num_threads(threads if threads is not None else thread_count())
    # warn_only: an op without a deterministic kernel warns instead of failing a training.
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous_deterministic, warn_only=previous_warn)
        torch.set_num_threads(previous_threads)
