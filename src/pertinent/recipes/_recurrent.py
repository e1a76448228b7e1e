"""The torch side of the HRNN recipes: the hierarchical GRU, its training and validation.

Imported only inside ``fit`` (it imports torch); serving runs the numpy twin in
``hrnn.RecurrentModel``, which reads the weights this module trains by their names.

The network (HRNN, Quadrana et al. 2017, in the GRU4Rec family):

* **Items.** An item's vector is its ID embedding (masked to zero for items without a
  training interaction) plus, for the metadata recipes, the ``BagEmbedder`` of its
  metadata. The same vectors are the session GRU's input and score the candidates
  (tied), so what metadata learns on warm items carries over to cold ones.
* **Two GRUs.** A session GRU reads the items of the current session; when a session
  ends (a gap of more than ``SESSION_GAP`` seconds before the next event) a user GRU
  takes the session's final state as its input, and the next session starts from
  ``tanh(W u + b)`` of the updated user state: the user's earlier sessions shape the
  start of the next one, the current session drives everything after.
* **Steps.** A window is a right-padded row of tokens ``[BOS | previous item, ...]``
  and, per position, the interaction row it predicts (``sequential.build_windows``).
  Position ``t`` consumes token ``t`` into the session GRU; when target ``t`` opens a
  new session the user GRU and the session reset happen next; then the state, through
  a linear map (plus user metadata and the target event's context), scores target
  ``t``. So the first item of a session is predicted from the user level, as it must
  be, and a request, which continues the newest session, reads the session state.

Loss: weighted softmax cross-entropy over the catalogue (sampled softmax with log-Q
correction past ``FULL_SOFTMAX_MAX_ITEMS``), plus, at ``future_weight``, the next
``horizon`` targets (the multi-horizon objective of ``sequential``: the metrics reward
getting the next few right, not one guess). Early stopping keeps the epoch with the
best NDCG@10 on the internal leave-last-out split.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

from pertinent.recipes._features import EncodedRows
from pertinent.recipes._knn import Builder, ItemKNN, choose_blend
from pertinent.recipes._opinions import BLEND_WEIGHTS
from pertinent.recipes._softmax import catalogue_loss
from pertinent.recipes._stopping import Patience
from pertinent.recipes.base import TrainingData
from pertinent.recipes.hrnn import SESSION_GAP, _steps
from pertinent.recipes.sequential import BagEmbedder, TorchRows, Windows, _future

__all__ = [
    "HrnnConfig",
    "HrnnNet",
    "HrnnTrainConfig",
    "HrnnTrainingSet",
    "blend",
    "cold_stats",
    "evaluate",
    "opens_session",
    "train",
    "validation_inputs",
]

Int64Array = npt.NDArray[np.int64]
I64 = Int64Array
Float32Array = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class HrnnConfig:
    n_items: int
    dim: int
    max_len: int
    dropout: float
    item_codes: int = 0
    item_numeric: int = 0
    user_codes: int = 0
    user_numeric: int = 0
    context_codes: int = 0
    context_numeric: int = 0

    @property
    def bos(self) -> int:
        return self.n_items

    @property
    def pad(self) -> int:
        return self.n_items + 1


def gru_step(
    gi: torch.Tensor, h: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor
) -> torch.Tensor:
    """One GRU step given the input's gate pre-activations ``gi`` (torch's GRUCell formula).

    Split out so the input projection of a whole window is one matmul, and so the numpy
    twin can precompute it per item.
    """
    gh = F.linear(h, w_hh, b_hh)
    i_r, i_z, i_n = gi.chunk(3, -1)
    h_r, h_z, h_n = gh.chunk(3, -1)
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return (1.0 - z) * n + z * h


class HrnnNet(nn.Module):
    has_id: torch.Tensor
    cold_bias: torch.Tensor

    def __init__(self, cfg: HrnnConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.item_id = nn.Embedding(cfg.n_items, d)
        nn.init.normal_(self.item_id.weight, std=0.05)
        self.item_bias = nn.Parameter(torch.zeros(cfg.n_items))
        self.item_meta = BagEmbedder(cfg.item_codes, cfg.item_numeric, d)
        self.user_meta = BagEmbedder(cfg.user_codes, cfg.user_numeric, d)
        self.context_meta = BagEmbedder(cfg.context_codes, cfg.context_numeric, d)
        self.session = nn.GRUCell(d, d)
        self.user = nn.GRUCell(d, d)
        self.user_start = nn.Parameter(torch.zeros(d))
        self.init = nn.Linear(d, d)
        self.out = nn.Linear(d, d)
        self.register_buffer("has_id", torch.zeros(cfg.n_items))
        self.register_buffer("cold_bias", torch.zeros(()))
        self.item_rows: TorchRows | None = None

    def item_vectors(self, idx: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(vectors, biases) of items ``idx`` (all when None)."""
        if idx is None:
            idx = torch.arange(self.cfg.n_items, device=self.item_bias.device)
            rows = self.item_rows
        else:
            rows = None if self.item_rows is None else self.item_rows.take(idx)
        mask = self.has_id[idx]
        vec = self.item_id(idx) * mask[:, None]
        bias = self.item_bias[idx] * mask + self.cold_bias * (1.0 - mask)
        if self.item_meta.active and rows is not None:
            vec = vec + self.item_meta(rows)
        return vec, bias

    def states(
        self,
        tokens: torch.Tensor,
        boundary: torch.Tensor,
        table: torch.Tensor,
        local: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Session states (B, T, d) that score each position's target.

        ``boundary[b, t]``: target ``t`` opens a new session (after token ``t`` is read).
        BOS and padding tokens leave the state as it is.
        """
        cfg = self.cfg
        b, t = tokens.shape
        real = tokens < cfg.n_items
        index = tokens if local is None else local
        x = table[torch.where(real, index, torch.zeros_like(index))]
        x = F.dropout(x, cfg.dropout, self.training)
        cell = self.session
        gi = F.linear(x, cell.weight_ih, cell.bias_ih)
        u = self.user_start.expand(b, -1)
        s = torch.tanh(self.init(u))
        out: list[torch.Tensor] = []
        for step in range(t):
            stepped = gru_step(gi[:, step], s, cell.weight_hh, cell.bias_hh)
            s = torch.where(real[:, step, None], stepped, s)
            m = boundary[:, step]
            if bool(m.any()):
                u_new = self.user(s, u)
                mm = m[:, None]
                u = torch.where(mm, u_new, u)
                s = torch.where(mm, torch.tanh(self.init(u_new)), s)
            out.append(s)
        return torch.stack(out, 1)

    def query(self, states: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.out(F.dropout(states, self.cfg.dropout, self.training))
        return out

    def side(self, rows: TorchRows | None, module: BagEmbedder) -> torch.Tensor | None:
        if rows is None or not module.active:
            return None
        out: torch.Tensor = module(rows)
        return out


# --- training data -----------------------------------------------------------------------


def opens_session(user: I64, ts: I64, keep: BoolArray) -> BoolArray:
    """Per row: a kept row that follows its user's previous kept row by more than the gap."""
    opens = np.zeros(user.shape[0], dtype=bool)
    rows = np.flatnonzero(keep)
    if rows.shape[0] > 1:
        same = user[rows[1:]] == user[rows[:-1]]
        opens[rows[1:]] = same & (ts[rows[1:]] - ts[rows[:-1]] > SESSION_GAP)
    return opens


def validation_inputs(
    user: I64, item: I64, ts: I64, val_rows: I64, n_items: int, max_len: int
) -> tuple[I64, BoolArray, tuple[I64, I64]]:
    """Left-padded newest ``max_len`` history items of each validation row, their session
    boundaries, and their seen items (CSR; rows are chosen so the target is never among them)."""
    n = val_rows.shape[0]
    tokens = np.full((n, max_len), n_items + 1, dtype=np.int64)
    boundary = np.zeros((n, max_len), dtype=bool)
    starts = np.searchsorted(user, user[val_rows], side="left")
    seen_parts: list[I64] = []
    offsets = np.zeros(n + 1, dtype=np.int64)
    for k, (a, b) in enumerate(zip(starts.tolist(), val_rows.tolist(), strict=True)):
        tok, bnd = _steps(item[a:b], ts[a:b], max_len)
        tokens[k, max_len - tok.shape[0] :] = tok
        boundary[k, max_len - bnd.shape[0] :] = bnd
        seen = item[a:b]
        seen_parts.append(seen)
        offsets[k + 1] = offsets[k] + seen.shape[0]
    seen_all = np.concatenate(seen_parts) if seen_parts else np.empty(0, dtype=np.int64)
    return tokens, boundary, (offsets, seen_all)


@dataclass(frozen=True)
class HrnnTrainingSet:
    windows: Windows
    boundary: BoolArray  # (W, T): target t opens a new session
    item: Int64Array  # target item per interaction row
    weight: Float32Array  # loss weight per row
    context: EncodedRows | None  # per row
    users: EncodedRows | None  # per user
    items: EncodedRows | None  # per item
    popularity: Float32Array  # training counts per item
    val_tokens: Int64Array  # (V, T) left-padded histories
    val_boundary: BoolArray  # (V, T)
    val_users: Int64Array
    val_rows: Int64Array
    val_target: Int64Array
    val_seen: tuple[Int64Array, Int64Array]  # CSR of items to exclude per validation row


@dataclass(frozen=True)
class HrnnTrainConfig:
    max_epochs: int
    patience: int
    batch_size: int
    lr: float
    negatives: int  # 0: full softmax
    horizon: int
    future_weight: float
    seed: int
    bf16: bool = False  # the catalogue softmax's products in bfloat16


def _rows(rows: EncodedRows | None, device: torch.device) -> TorchRows | None:
    return None if rows is None else TorchRows.of(rows, device)


def _snapshot(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def train(
    net: HrnnNet,
    data: HrnnTrainingSet,
    cfg: HrnnTrainConfig,
    device: torch.device,
    stop: Callable[[], bool],
    log: Callable[[str], None] | None = None,
) -> list[float]:
    """Fit ``net`` in place and keep its best epoch; returns each epoch's validation NDCG."""
    rng = np.random.default_rng(cfg.seed)
    net.to(device)
    net.item_rows = _rows(data.items, device)
    users, context = _rows(data.users, device), _rows(data.context, device)
    item = torch.from_numpy(data.item).to(device)
    weight = torch.from_numpy(data.weight).to(device)
    n_items = net.cfg.n_items
    sampled = 0 < cfg.negatives < n_items
    q = np.power(data.popularity.astype(np.float64), 0.75)
    q = q / max(q.sum(), 1e-12)
    proposal = torch.from_numpy(q.astype(np.float32)).to(device)
    expected = np.maximum(q * max(cfg.negatives, 1), 1e-12)
    log_q = torch.from_numpy(np.log(expected).astype(np.float32)).to(device)
    cold = torch.from_numpy(data.popularity <= 0).to(device)
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.seed)
    optim = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    w = data.windows
    has_val = data.val_tokens.shape[0] > 0
    best_state = _snapshot(net)
    patience = Patience.above_popularity(
        cfg.patience, data.popularity, data.val_target, data.val_seen, log
    )
    curve: list[float] = []
    for epoch in range(cfg.max_epochs):
        if stop():
            break
        net.train()
        total, count = 0.0, 0
        order = rng.permutation(w.tokens.shape[0])
        # Similar lengths together: the GRU steps only as far as the longest window.
        order = order[np.argsort(w.length[order] // 4, kind="stable")]
        batches = [order[i : i + cfg.batch_size] for i in range(0, order.shape[0], cfg.batch_size)]
        for k in rng.permutation(len(batches)):
            batch = batches[k]
            width = int(w.length[batch].max())
            rows_np = w.rows[batch, :width]
            valid_np = rows_np >= 0
            flat_rows = rows_np[valid_np]
            tokens = torch.from_numpy(w.tokens[batch, :width]).to(device)
            boundary = torch.from_numpy(data.boundary[batch, :width]).to(device)
            rows_t = torch.from_numpy(flat_rows).to(device)
            valid = torch.from_numpy(valid_np).to(device)
            target = item[rows_t]
            fut_np = _future(rows_np, cfg.horizon)[valid_np] if cfg.horizon else None
            future = None
            if fut_np is not None:
                fut_t = torch.from_numpy(fut_np).to(device)
                future = torch.where(fut_t >= 0, item[fut_t.clamp_min(0)], -1)
            if sampled:
                negs = torch.multinomial(proposal, cfg.negatives, True, generator=gen)
                cand = torch.unique(torch.cat([tokens[tokens < n_items], target, negs]))
                vec, bias = net.item_vectors(cand)
                lookup = torch.zeros(n_items + 2, dtype=torch.int64, device=device)
                lookup[cand] = torch.arange(cand.shape[0], device=device)
                states = net.states(tokens, boundary, vec, lookup[tokens])
                bias = bias - log_q[cand]
                label = lookup[target]
                if future is not None:
                    future = torch.where(future >= 0, lookup[future.clamp_min(0)], -1)
            else:
                vec, bias = net.item_vectors()
                states = net.states(tokens, boundary, vec)
                # Items never seen in training are nobody's answer: out of the softmax.
                bias = bias.masked_fill(cold, float("-inf"))
                label = target
            qv = net.query(states[valid])
            if users is not None:
                owner = torch.arange(tokens.shape[0], device=device)[:, None].expand_as(valid)
                picked = users.take(torch.from_numpy(w.user[batch]).to(device))
                uvec = net.side(picked, net.user_meta)
                qv = qv if uvec is None else qv + uvec[owner[valid]]
            if context is not None:
                cvec = net.side(context.take(rows_t), net.context_meta)
                qv = qv if cvec is None else qv + cvec
            per_row = catalogue_loss(qv, vec, bias, label, future, cfg.future_weight, bf16=cfg.bf16)
            wt = weight[rows_t]
            loss = (per_row * wt).sum() / wt.sum().clamp_min(1e-12)
            optim.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            optim.step()
            total += float(loss.detach()) * flat_rows.shape[0]
            count += flat_rows.shape[0]
        score = evaluate(net, data, device)[0] if has_val else -float(epoch)
        curve.append(score)
        if log is not None:
            log(f"epoch {epoch + 1}: loss {total / max(count, 1):.4f} val ndcg@10 {score:.4f}")
        improved, give_up = patience.update(score)
        if improved or not has_val:
            best_state = _snapshot(net)
        if give_up:
            break
    net.load_state_dict(best_state)
    _set_cold_bias(net)
    return curve


def _set_cold_bias(net: HrnnNet) -> None:
    """Items nobody interacted with get the bias of the least popular tenth of the others
    (as ``sequential.set_cold_bias``: low, so metadata must earn them a place)."""
    warm = net.has_id > 0
    if bool(warm.any()):
        with torch.no_grad():
            net.cold_bias.fill_(float(torch.quantile(net.item_bias[warm].float(), 0.1)))


@torch.no_grad()
def evaluate(
    net: HrnnNet,
    data: HrnnTrainingSet,
    device: torch.device,
    extra: Callable[[int, int], Float32Array] | None = None,
    betas: tuple[float, ...] = (0.0,),
) -> list[float]:
    """Validation NDCG@10 (full ranking, seen items removed), one per blend weight ``β``
    of ``logits + β · extra(start, stop)``."""
    net.eval()
    n = data.val_tokens.shape[0]
    if n == 0:
        return [0.0 for _ in betas]
    users, context = _rows(data.users, device), _rows(data.context, device)
    vec, bias = net.item_vectors()
    gains: list[list[torch.Tensor]] = [[] for _ in betas]
    seen_off, seen_items = data.val_seen
    for start in range(0, n, 512):
        stop = min(start + 512, n)
        tokens = torch.from_numpy(data.val_tokens[start:stop]).to(device)
        boundary = torch.from_numpy(data.val_boundary[start:stop]).to(device)
        q = net.query(net.states(tokens, boundary, vec)[:, -1])
        if users is not None:
            uvec = net.side(
                users.take(torch.from_numpy(data.val_users[start:stop]).to(device)), net.user_meta
            )
            q = q if uvec is None else q + uvec
        if context is not None:
            rows = context.take(torch.from_numpy(data.val_rows[start:stop]).to(device))
            cvec = net.side(rows, net.context_meta)
            q = q if cvec is None else q + cvec
        base = q @ vec.T + bias[None, :]
        lo, hi = seen_off[start], seen_off[stop]
        owner = np.repeat(np.arange(stop - start), np.diff(seen_off[start : stop + 1]))
        base[torch.from_numpy(owner).to(device), torch.from_numpy(seen_items[lo:hi]).to(device)] = (
            float("-inf")
        )
        target = torch.from_numpy(data.val_target[start:stop]).to(device)
        more = None if extra is None else torch.from_numpy(extra(start, stop)).to(device)
        for k, beta in enumerate(betas):
            scores = base if more is None or beta == 0.0 else base + beta * more
            rank = (scores > scores.gather(1, target[:, None])).sum(1)
            gains[k].append(torch.where(rank < 10, 1.0 / torch.log2(rank.double() + 2.0), 0.0))
    return [float(torch.cat(g).mean()) for g in gains]


def numpy_state(net: HrnnNet) -> dict[str, npt.NDArray[Any]]:
    """The trained weights as float32 arrays, named as ``hrnn.RecurrentModel`` reads them."""
    net = net.cpu().eval()
    with torch.no_grad():
        vec, bias = net.item_vectors()
    # The ID table is inside V already; serving never reads it apart.
    state = {
        k: v.detach().cpu().numpy().astype(np.float32)
        for k, v in net.state_dict().items()
        if k != "item_id.weight"
    }
    state["V"] = vec.numpy().astype(np.float32)
    state["bias"] = bias.numpy().astype(np.float32)
    return state


def blend(
    net: HrnnNet,
    data: HrnnTrainingSet,
    device: torch.device,
    models: list[tuple[str, Builder]],
    rows: tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]],
    histories: list[Int64Array],
    log: bool,
) -> tuple[ItemKNN | None, float]:
    """The neighbour model and blend weight with the best validation NDCG@10; ``rows``:
    the interactions to fit candidates on (validation held out), then the winner."""

    def ndcg_of(knn: ItemKNN) -> npt.NDArray[np.float64]:
        extra = lambda a, b: knn.scores(histories[a:b])  # noqa: E731
        return np.asarray(evaluate(net, data, device, extra, BLEND_WEIGHTS))

    return choose_blend(models, rows[0], rows[1], ndcg_of, BLEND_WEIGHTS, log)


def cold_stats(data: TrainingData, item: I64) -> dict[str, npt.NDArray[Any]]:
    """Per item: creation time (s; NaN: unknown, brand new), interactions, impressions;
    and the ``latestItem`` reference (newest creation, else newest interaction)."""
    inter = data.interactions
    n_items = inter.n_items
    newest = float(inter.timestamp.max()) if len(inter) else 0.0
    if data.item_creation_time is not None:
        created = data.item_creation_time.astype(np.float64)
        latest = float(np.nanmax(created)) if n_items else newest
    else:
        created = np.full(n_items, np.nan)
        if len(inter):
            np.fmin.at(created, item, inter.timestamp.astype(np.float64))
        latest = newest
    shown = np.zeros(n_items, dtype=np.float32)
    if inter.impressions is not None:
        shown = np.bincount(inter.impressions[1], minlength=n_items).astype(np.float32)
    return {
        "created": created,
        "interactions": np.bincount(item, minlength=n_items).astype(np.float32),
        "impressions": shown,
        "latest": np.asarray([latest]),
    }
