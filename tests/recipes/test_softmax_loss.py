"""``catalogue_loss`` against the textbook log-softmax cross-entropy, values and gradients."""

from __future__ import annotations

import pytest
import torch

from pertinent.recipes._softmax import catalogue_loss, linear_log_sum_exp


def _naive(
    q: torch.Tensor,
    vec: torch.Tensor,
    bias: torch.Tensor,
    label: torch.Tensor,
    future: torch.Tensor | None,
    future_weight: float,
    extra: torch.Tensor | None,
) -> torch.Tensor:
    logits = q @ vec.T + bias[None, :]
    if extra is not None:
        logits = torch.cat([logits, extra], dim=1)
    logp = torch.log_softmax(logits, dim=1)
    per_row = -logp.gather(1, label[:, None])[:, 0]
    if future is not None and future_weight > 0:
        has = future >= 0
        fut = torch.where(has, -logp.gather(1, future.clamp_min(0)), 0.0)
        per_row = per_row + future_weight * fut.sum(1) / has.sum(1).clamp_min(1)
    return per_row


def _inputs(seed: int, cold: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    n, v, d = 37, 211, 16
    q = (3 * torch.randn(n, d, generator=g, dtype=torch.float64)).requires_grad_()
    vec = torch.randn(v, d, generator=g, dtype=torch.float64).requires_grad_()
    bias = torch.randn(v, generator=g, dtype=torch.float64)
    if cold:  # items out of the softmax, as the recipes mask never-seen items
        bias = bias.masked_fill(torch.arange(v) % 7 == 3, float("-inf"))
    return q, vec, bias.requires_grad_()


@pytest.mark.parametrize("case", ["label", "future", "extra", "cold"])
def test_catalogue_loss_matches_log_softmax(case: str) -> None:
    q, vec, bias = _inputs(0, cold=case == "cold")
    n = q.shape[0]
    g = torch.Generator().manual_seed(1)
    allowed = torch.isfinite(bias.detach()).nonzero()[:, 0]
    label = allowed[torch.randint(0, allowed.shape[0], (n,), generator=g)]
    future = None
    if case in ("future", "cold", "extra"):
        future = allowed[torch.randint(0, allowed.shape[0], (n, 5), generator=g)]
        # Rows with fewer later targets (-1), one with none at all.
        future[torch.rand(n, 5, generator=g) < 0.4] = -1
        future[0] = -1
    extra = None
    if case == "extra":
        extra = torch.randn(n, 4, generator=g, dtype=torch.float64)
        extra = extra.masked_fill(torch.rand(n, 4, generator=g) < 0.3, float("-inf"))
        extra.requires_grad_()
    weights = torch.rand(n, generator=g, dtype=torch.float64)

    ours = catalogue_loss(q, vec, bias, label, future, 0.5, extra)
    (ours * weights).sum().backward()  # type: ignore[no-untyped-call]
    leaves = (q, vec, bias) if extra is None else (q, vec, bias, extra)
    got = [t.grad.clone() for t in leaves]  # type: ignore[union-attr]
    for t in leaves:
        t.grad = None
    expected = _naive(q, vec, bias, label, future, 0.5, extra)
    (expected * weights).sum().backward()  # type: ignore[no-untyped-call]

    assert torch.allclose(ours, expected, rtol=1e-10, atol=1e-10)
    for mine, theirs in zip(got, (t.grad for t in leaves), strict=True):
        assert theirs is not None
        assert torch.allclose(mine, theirs, rtol=1e-9, atol=1e-10)


def test_linear_log_sum_exp_is_stable_for_large_logits() -> None:
    q, vec, bias = _inputs(2, cold=False)
    q32, vec32 = (200 * q.detach()).float(), vec.detach().float()
    got = linear_log_sum_exp(q32, vec32, bias.detach().float())
    expected = torch.logsumexp(q32 @ vec32.T + bias.detach().float()[None, :], dim=1)
    assert torch.isfinite(got).all()
    assert torch.allclose(got, expected, rtol=1e-5)


def test_gradients_pass_torch_gradcheck() -> None:
    g = torch.Generator().manual_seed(3)
    q, vec, bias = (
        torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_()
        for shape in ((6, 5), (9, 5), (9,))
    )
    assert torch.autograd.gradcheck(linear_log_sum_exp, (q, vec, bias))


def test_bfloat16_products_stay_close_to_float32() -> None:
    q, vec, bias = (t.detach().float() for t in _inputs(4, cold=True))
    label = torch.isfinite(bias).nonzero()[:37, 0]
    leaves = [(t.clone().requires_grad_() for t in (q, vec, bias)) for _ in range(2)]
    losses, grads = [], []
    for bf16, (a, b, c) in zip((False, True), leaves, strict=True):
        loss = catalogue_loss(a, b, c, label, bf16=bf16)
        loss.sum().backward()  # type: ignore[no-untyped-call]
        losses.append(loss.detach())
        grads.append([t.grad for t in (a, b, c)])
    assert losses[1].dtype == torch.float32
    assert torch.allclose(losses[1], losses[0], rtol=0.02, atol=0.05)
    for mine, theirs in zip(grads[1], grads[0], strict=True):
        assert mine is not None and theirs is not None and mine.dtype == torch.float32
        assert torch.allclose(mine, theirs, rtol=0.05, atol=0.05 * float(theirs.abs().max()))
