"""The training loss of the neural recipes: softmax cross-entropy over the catalogue.

Each row (one prediction) has a query ``q``; the candidates are the rows of ``vec``
with biases ``bias`` (the whole catalogue, or a sampled subset with its log-Q
correction already in ``bias``). The loss of a row is ``lse - logit(label)``, plus
``future_weight`` times the mean of ``lse - logit(f)`` over its later targets ``f``.

Written naively (``log_softmax`` of ``q @ vec.T + bias``, then ``gather``), autograd
walks the (rows x catalogue) matrix about ten times per step: the bias add, the
log-softmax and its backward, two zero-filled gather gradients and their sum. On
2 cores at 4k rows x 5.8k items those passes cost as much as the matrix products.
Here only the log-partition ``lse`` touches the catalogue, through ``_LinearLogSumExp``,
which keeps the softmax from its forward pass and turns it into the three gradients
with matrix products alone; the few picked logits are computed from their own vectors
(rows x targets x d), so their gradients never form a catalogue-wide matrix. Same
mathematics, float rounding aside; a step of the 1M-interaction benchmark model takes
0.80x the time of the textbook loss, 0.60x with the products in bfloat16
(bench/train_step.py, side by side on 2 cores).
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["catalogue_loss", "linear_log_sum_exp"]


class _LinearLogSumExp(torch.autograd.Function):
    """``logsumexp(q @ vec.T + bias, dim=1)`` with a matrix-product backward."""

    @staticmethod
    def forward(
        ctx: Any,
        q: torch.Tensor,
        vec: torch.Tensor,
        bias: torch.Tensor,
        bf16: bool,
        absent: torch.Tensor | None,
    ) -> torch.Tensor:
        if bf16:
            # The products in bfloat16, the softmax and its sums in float32.
            q, vec = q.bfloat16(), vec.bfloat16()
            logits = torch.mm(q, vec.t()).float().add_(bias)
        else:
            logits = torch.addmm(bias, q, vec.t())
        if absent is not None:
            logits.masked_fill_(absent, float("-inf"))
        top, at = logits.max(dim=1)
        soft = torch.softmax(logits, dim=1)
        del logits
        # softmax at the row's maximum is exactly 1 / sum(exp(logits - max)), never tiny.
        lse = top - torch.log(soft.gather(1, at[:, None])[:, 0])
        ctx.save_for_backward(q, vec, soft.to(q.dtype))
        return lse

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        q, vec, soft = ctx.saved_tensors
        # d lse_n / d logit_nj = soft_nj; scaling the thin factors by the incoming
        # gradient instead of ``soft`` saves another pass over the wide matrix.
        g = grad.to(soft.dtype)
        grad_q = grad[:, None] * (soft @ vec).to(grad.dtype)
        grad_vec = (soft.t() @ (g[:, None] * q)).to(grad.dtype)
        grad_bias = (soft.t() @ g[:, None])[:, 0].to(grad.dtype)
        return grad_q, grad_vec, grad_bias, None, None


def linear_log_sum_exp(
    q: torch.Tensor,
    vec: torch.Tensor,
    bias: torch.Tensor,
    bf16: bool = False,
    absent: torch.Tensor | None = None,
) -> torch.Tensor:
    """``torch.logsumexp(q @ vec.T + bias, dim=1)``, differentiable in all three;
    ``bf16``: the matrix products in bfloat16 (``_torch.fast_bfloat16``); ``absent``
    (rows x catalogue, bool): candidates left out of that row's sum."""
    out: torch.Tensor = _LinearLogSumExp.apply(q, vec, bias, bf16, absent)  # type: ignore[no-untyped-call]
    return out


def catalogue_loss(
    q: torch.Tensor,
    vec: torch.Tensor,
    bias: torch.Tensor,
    label: torch.Tensor,
    future: torch.Tensor | None = None,
    future_weight: float = 0.0,
    extra: torch.Tensor | None = None,
    bf16: bool = False,
    absent: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-row loss (N,): cross-entropy of ``label`` (N,) among ``vec`` (V, d), plus
    ``future_weight`` x the mean cross-entropy of the row's ``future`` targets (N, H),
    -1 where none. ``extra`` (N, K) are further logits in each row's softmax (never a
    label; -inf where absent). ``bf16``: the catalogue-wide products in bfloat16.
    ``absent`` (N, V) bool: candidates not in that row's softmax (items that did not
    exist yet at the row's time); a future target among them does not count."""
    lse = linear_log_sum_exp(q, vec, bias, bf16, absent)
    if extra is not None:
        lse = torch.logaddexp(lse, torch.logsumexp(extra, dim=1))
    idx, has = label[:, None], None
    if future is not None and future_weight > 0:
        has = future >= 0
        if absent is not None:
            has &= ~absent.gather(1, future.clamp_min(0))
        # Absent targets point at the label (a finite logit) and are masked out below.
        idx = torch.cat([idx, torch.where(has, future, idx)], dim=1)
    logits = torch.bmm(vec[idx], q[:, :, None])[:, :, 0] + bias[idx]
    per_row = lse - logits[:, 0]
    if has is None:
        return per_row
    fut = torch.where(has, lse[:, None] - logits[:, 1:], 0.0)
    return per_row + future_weight * fut.sum(1) / has.sum(1).clamp_min(1)
